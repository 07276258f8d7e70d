"""Golden tests for engine_request(): ContainerSpec -> Docker Engine API, with no daemon.

Together with tests/golden/<case>.json (policy -> ContainerSpec) these pin every setting a job container gets.
Regenerate with UPDATE_GOLDEN=1 and review the diff as a change to security policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from onexd.runtime.docker import engine_request
from tests.engine.test_translate import CASES, GOLDEN

INVARIANTS = {
    "Privileged": False, "ReadonlyRootfs": True, "CapDrop": ["ALL"], "RestartPolicy": {"Name": "no",
                                                                                         "MaximumRetryCount": 0},
    "IpcMode": "private", "PublishAllPorts": False, "PortBindings": {}, "Devices": [],
    "LogConfig": {"Type": "none", "Config": {}},
}


def _request(name: str, tmp_path: Path) -> dict[str, Any]:
    from onexd.engine.decide import decide
    from onexd.engine.request import JobRequest
    from onexd.engine.translate import translate
    from onexd.identity.principal import parse_subject
    from tests.conftest import EXAMPLES
    from tests.engine.test_translate import JOB_ID, PATHS, _snapshot, _strict_policy

    snapshot = _snapshot(_strict_policy(tmp_path) if name == "adhoc-strict" else EXAMPLES)
    request = JobRequest.model_validate(CASES[name])
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    spec = translate(snapshot, decision, request, JOB_ID, PATHS)
    body = engine_request(spec)
    body["argv"] = list(spec.command)  # not an engine argument: kept beside it for the invariant test
    body["labels"] = {k: ("<digest>" if k == "onexd.policy" else v) for k, v in body["labels"].items()}
    return json.loads(json.dumps(body))


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_request_matches_golden(name: str, tmp_path: Path) -> None:
    """The exact create_container arguments for each case are the reviewed golden file."""
    actual = _request(name, tmp_path)
    del actual["argv"]
    path = GOLDEN / f"engine-{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_request_keeps_the_invariants(name: str, tmp_path: Path) -> None:
    """Whatever the case: never privileged, read-only, all caps dropped, no ports, devices or logs, no proxy."""
    body = _request(name, tmp_path)
    host = body["host_config"]
    for key, value in INVARIANTS.items():
        assert host[key] == value, key
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] == host["MemorySwap"] > 0
    assert host["PidsLimit"] > 0 and host["NanoCpus"] > 0 and host["Ulimits"][0]["Name"] == "nofile"
    assert host["NetworkMode"] in ("none", "onexd-zone-analytics")
    assert all(m["ReadOnly"] and m["Type"] == "bind" for m in host["Mounts"])
    assert body["use_config_proxy"] is False and body["tty"] is False
    assert body["user"] != "0:0" and not str(body["user"]).startswith("0:")
    # The argv is split over entrypoint and command so that no image ENTRYPOINT can wrap it.
    assert [*body["entrypoint"], *body["command"]] == body["argv"]
