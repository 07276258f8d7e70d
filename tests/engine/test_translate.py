"""Golden tests for translate(): a policy and a request in, the exact container spec out.

A change to a golden file is a change to security policy: review it as one. Regenerate with
`UPDATE_GOLDEN=1 pytest tests/engine/test_translate.py` and read the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from onexd.engine.decide import decide
from onexd.engine.request import JobRequest
from onexd.engine.translate import HostPaths, translate
from onexd.errors import OnexdError
from onexd.identity.principal import parse_subject
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from tests.conftest import BASELINE, EXAMPLES, doc, write_bundle

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
JOB_ID = "0123456789abcdef0123456789abcdef"
PATHS = HostPaths(node_source="/var/lib/onexd/nodes/sha256-0000", secrets_dir="/run/onexd/secrets/job")


def _snapshot(path: Path) -> Snapshot:
    ev = load_directory(path)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


def _strict_policy(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(BASELINE / "baseline", root / "baseline")
    write_bundle(root, "ops", [
        doc("Capability", "adhoc-strict", {"adhoc": True, "profiles": ["strict"]}),
        doc("Role", "probe", {"permissions": ["nodes:execute"], "capabilities": ["adhoc-strict"]}),
        doc("RoleBinding", "probers", {"roles": ["probe"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])
    return root


CASES: dict[str, dict[str, Any]] = {
    "hello": {"node": "hello", "input": {"name": "golden"}},
    "wordcount": {"node": "wordcount", "input": {"text": "a b"}},
    "adhoc-busybox": {"profile": "busybox-tiny", "command": ["sh", "-c", "id"]},
    "adhoc-strict": {"profile": "strict", "command": ["cat", "/proc/self/status"]},
}


def _spec_json(name: str, tmp_path: Path) -> dict[str, Any]:
    snapshot = _snapshot(_strict_policy(tmp_path) if name == "adhoc-strict" else EXAMPLES)
    request = JobRequest.model_validate(CASES[name])
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    assert decision.allowed, decision.reasons
    spec = translate(snapshot, decision, request, JOB_ID, PATHS)
    data = dataclasses.asdict(spec)
    # The policy digest depends on bundle bytes (comments included); the golden pins the rest.
    data["labels"] = [[k, "<digest>" if k == "onexd.policy" else v] for k, v in data["labels"]]
    assert dict(spec.labels)["onexd.policy"] == snapshot.digest
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("name", sorted(CASES))
def test_translation_matches_golden(name: str, tmp_path: Path) -> None:
    """The container spec for the case is exactly the reviewed golden file."""
    actual = _spec_json(name, tmp_path)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(path.read_text())


def test_translate_refuses_a_denied_decision() -> None:
    """Fail closed: no spec is ever built for a denial."""
    snapshot = _snapshot(EXAMPLES)
    request = JobRequest(node="wordcount", input={})
    decision = decide(snapshot, parse_subject("ApiKey:deploy-bot"), request)
    with pytest.raises(OnexdError):
        translate(snapshot, decision, request, JOB_ID, PATHS)


def test_translate_refuses_a_decision_from_another_snapshot(tmp_path: Path) -> None:
    """A decision is only valid with the snapshot it was made on."""
    examples = _snapshot(EXAMPLES)
    other = _snapshot(_strict_policy(tmp_path))
    request = JobRequest(profile="strict", command=("true",))
    decision = decide(other, parse_subject("UnixUser:root"), request)
    with pytest.raises(OnexdError):
        translate(examples, decision, request, JOB_ID, PATHS)


def test_secrets_require_a_staging_directory() -> None:
    """A job granted secrets cannot be translated without its memory-backed secrets directory."""
    snapshot = _snapshot(EXAMPLES)
    request = JobRequest(node="wordcount", input={})
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    with pytest.raises(OnexdError, match="staging"):
        translate(snapshot, decision, request, JOB_ID, HostPaths(node_source="/x"))
