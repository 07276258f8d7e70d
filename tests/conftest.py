"""Shared fixtures: example policy paths and a builder for throw-away bundles."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest_plugins = ["tests.suite", "pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "policies"
BASELINE = ROOT / "policies"

BundleBuilder = Callable[..., Path]


def doc(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "onexd/v1", "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


RESOURCES = {"memory": "64Mi", "cpus": 0.5, "pids": 32, "nofile": 64, "timeoutSeconds": 30, "outputBytes": "64Ki"}


def minimal_docs() -> list[dict[str, Any]]:
    """A small complete policy: one node a UnixUser:root may run."""
    return [
        doc("SandboxProfile", "small", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                        "tmpfs": [{"path": "/tmp", "size": "4Mi", "mode": "1777"}],
                                        "resources": dict(RESOURCES)}),
        doc("Node", "echo", {"version": "1.0.0", "profile": "small", "command": ["cat"]}),
        doc("Capability", "run-echo", {"nodes": ["echo"], "profiles": ["small"]}),
        doc("Role", "runner", {"permissions": ["nodes:execute"], "capabilities": ["run-echo"]}),
        doc("RoleBinding", "runners", {"roles": ["runner"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ]


def write_bundle(root: Path, name: str, docs: list[dict[str, Any]] | str, version: str = "1.0.0",
                 files: dict[str, str | bytes] | None = None) -> Path:
    """A bundle directory `root/name` with bundle.yaml, policy.yaml (docs) and extra files."""
    bundle = root / name
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "bundle.yaml").write_text(yaml.safe_dump(doc("Bundle", name, {"version": version})))
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs, sort_keys=False)
    (bundle / "policy.yaml").write_text(text)
    for rel, content in (files or {}).items():
        path = bundle / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return bundle


@pytest.fixture
def staging_dir() -> Iterator[Path]:
    """A memory-backed secret staging root of the test's own; it must be empty again when the test ends."""
    path = Path("/dev/shm") / f"onexd-test-{uuid.uuid4().hex[:12]}"
    path.mkdir(mode=0o711)
    yield path
    leftovers = list(path.iterdir())
    shutil.rmtree(path, ignore_errors=True)
    assert leftovers == [], f"staging directories left behind: {leftovers}"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir()
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from onexd.cli.main import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def validate_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    code, out, _ = run_cli(["policy", "validate", str(path), "-o", "json"], capsys)
    return code, json.loads(out)
