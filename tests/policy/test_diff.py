"""`policy diff`: changes in security terms, with exit 0 same, 1 different, >1 error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_cli


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_same_policy_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Identical directories: no changes, exit 0."""
    code, out, _ = run_cli(["policy", "diff", str(EXAMPLES), str(_copy(tmp_path, "b")), "-o", "json"], capsys)
    assert (code, json.loads(out)) == (0, [])


def test_security_changes_are_classified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Raised limits and added grants widen; lowered limits and removed permissions narrow."""
    new = _copy(tmp_path, "new")
    _edit(new / "hello" / "bundle.yaml", "version: 1.0.0", "version: 1.1.0")
    _edit(new / "hello" / "sandbox.yaml", "memory: 128Mi", "memory: 256Mi")
    _edit(new / "hello" / "sandbox.yaml", "pids: 64", "pids: 32")
    _edit(new / "hello" / "access.yaml", 'permissions: ["nodes:read", "nodes:execute", "jobs:read"]',
          'permissions: ["nodes:execute", "jobs:read"]')
    _edit(new / "hello" / "access.yaml", "    - {kind: UnixUser, name: root}",
          "    - {kind: UnixUser, name: root}\n    - {kind: UnixGroup, name: staff}")
    code, out, _ = run_cli(["policy", "diff", str(EXAMPLES), str(new), "-o", "json"], capsys)
    assert code == 1
    changes = {(c["kind"], c["name"], c["field"], c["change"], c["effect"]) for c in json.loads(out)}
    assert ("SandboxProfile", "python-small", "resources.memory", "raised", "widens") in changes
    assert ("SandboxProfile", "python-small", "resources.pids", "lowered", "narrows") in changes
    assert ("Role", "hello-runner", "permissions", "removed", "narrows") in changes
    assert ("Subject", "UnixGroup:staff", "", "added", "widens") in changes
    assert ("Bundle", "hello", "version", "changed", "changes") in changes


def test_text_output_marks_widening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text form shows one line per change with + for widening."""
    new = _copy(tmp_path, "new")
    _edit(new / "data-job" / "policy.yaml", "zones: [analytics]", "zones: [analytics, none]")
    _edit(new / "data-job" / "policy.yaml", 'nodes: ["word*"]', 'nodes: ["word*", "hello"]')
    code, out, _ = run_cli(["policy", "diff", str(EXAMPLES), str(new)], capsys)
    assert code == 1
    assert "+ Capability run-data-jobs nodes: added hello (widens)" in out


def test_invalid_side_is_an_error_above_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory that does not validate is an error (exit > 1), not a difference."""
    new = _copy(tmp_path, "new")
    _edit(new / "hello" / "sandbox.yaml", 'user: "10001:10001"', 'user: "0:0"')
    code, _, _ = run_cli(["policy", "diff", str(EXAMPLES), str(new)], capsys)
    assert code > 1


def test_warm_pool_sizes_are_shown_as_changes_not_widenings(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """A node's or profile's warmPool size appears in the diff as `warmPool.size`, a change (it keeps containers
    waiting; it grants no job anything)."""
    new = _copy(tmp_path, "new")
    _edit(new / "hello" / "bundle.yaml", "version: 1.0.0", "version: 1.1.0")
    _edit(new / "hello" / "sandbox.yaml", "  resources: {memory: 32Mi",
          "  warmPool: {size: 4}\n  resources: {memory: 32Mi")
    _edit(new / "hello" / "nodes.yaml", "  command: [python3, /app/node/main.py]",
          "  command: [python3, /app/node/main.py]\n  warmPool: {size: 2}")
    code, out, _ = run_cli(["policy", "diff", str(EXAMPLES), str(new), "-o", "json"], capsys)
    changes = {(c["kind"], c["name"], c["field"], c["change"], c["new"], c["effect"]) for c in json.loads(out)}
    assert code == 1
    assert ("SandboxProfile", "busybox-tiny", "warmPool.size", "changed", 4, "changes") in changes
    assert ("Node", "hello", "warmPool.size", "changed", 2, "changes") in changes
