"""Posture scores: the strict baseline ranks above a weaker profile; --min-score and diff act on the scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from onexd.policy.pipeline import load_directory
from onexd.policy.posture import DANGEROUS_SYSCALLS, HostCapacity, Posture, allowed_syscalls, analyze, score_changes
from onexd.policy.snapshot import Snapshot
from onexd.runtime.syscall_table import SYSCALLS
from tests.conftest import BASELINE, EXAMPLES, RESOURCES, doc, run_cli, write_bundle

HOST = HostCapacity(cpus=2, memory_bytes=8 << 30)
HOST_FLAGS = ["--host-cpus", "2", "--host-memory", "8Gi"]
STRICT = json.loads((BASELINE / "baseline" / "seccomp" / "onexd-strict.json").read_text())


def _wider_seccomp() -> dict[str, Any]:
    """The strict allowlist plus 40 more (harmless) calls."""
    allowed = set(STRICT["syscalls"][0]["names"])
    extra = sorted(set(SYSCALLS["x86_64"].values()) - allowed - DANGEROUS_SYSCALLS)[:40]
    rules = [{"names": sorted(allowed | set(extra)), "action": "SCMP_ACT_ALLOW"}, *STRICT["syscalls"][1:]]
    return {**STRICT, "syscalls": rules}


def _looser_docs() -> list[dict[str, Any]]:
    return [
        doc("SeccompProfile", "wider", {"profile": _wider_seccomp()}),
        doc("SandboxProfile", "looser", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                         "tmpfs": [{"path": "/tmp", "size": "16Mi", "mode": "1777"}],
                                         "capabilities": {"add": ["NET_BIND_SERVICE"]},
                                         "seccompProfile": "wider", "resources": dict(RESOURCES)}),
    ]


def _policy(root: Path, looser: bool) -> Path:
    shutil.copytree(BASELINE / "baseline", root / "baseline")
    if looser:
        write_bundle(root, "looser", _looser_docs())
    return root


def _snapshot(root: Path) -> Snapshot:
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


def _by_name(postures: list[Posture]) -> dict[str, Posture]:
    return {p.name: p for p in postures if p.subject == "profile"}


def test_strict_baseline_ranks_above_a_profile_adding_a_capability_and_syscalls(tmp_path: Path) -> None:
    """strict > looser, and the looser one's findings name the capability and the larger allowlist."""
    postures = analyze(_snapshot(_policy(tmp_path, looser=True)), HOST)
    scores = _by_name(postures)
    assert scores["strict"].score > scores["looser"].score
    assert [p.name for p in postures if p.subject == "profile"] == ["strict", "looser"]  # strongest first
    messages = " ".join(f.message for f in scores["looser"].findings)
    assert "NET_BIND_SERVICE" in messages and f"allows {len(allowed_syscalls(_wider_seccomp())[0])}" in messages


def test_every_score_is_between_1_and_100_and_findings_sum_to_the_loss(tmp_path: Path) -> None:
    """A confined sandbox never scores 0 (reserved for unconfined); weights explain the whole score."""
    for posture in analyze(_snapshot(_policy(tmp_path, looser=True)), HOST):
        assert 1 <= posture.score <= 100
        assert posture.score == max(1, 100 - sum(f.weight for f in posture.findings))


def test_dangerous_calls_and_egress_and_secrets_cost_points(tmp_path: Path) -> None:
    """A node's effective sandbox: its secrets and zone count; a dangerous allowed call is named."""
    snapshot = _snapshot(EXAMPLES)
    nodes = {p.name: p for p in analyze(snapshot, HOST) if p.subject == "node"}
    wordcount = nodes["wordcount"]
    assert any(f.area == "secrets" for f in wordcount.findings)
    assert any(f.area == "network" for f in wordcount.findings)
    risky = {"syscalls": [{"names": ["read", "ptrace", "unshare"], "action": "SCMP_ACT_ALLOW"}]}
    assert allowed_syscalls(risky)[1] & DANGEROUS_SYSCALLS == {"ptrace", "unshare"}


def test_limits_are_weighed_against_the_host(tmp_path: Path) -> None:
    """The same profile scores lower on a host where its limits are a larger share."""
    snapshot = _snapshot(_policy(tmp_path, looser=False))
    big = _by_name(analyze(snapshot, HOST))["strict"].score
    small = _by_name(analyze(snapshot, HostCapacity(cpus=0.5, memory_bytes=256 << 20)))["strict"].score
    assert small < big


def test_score_changes_report_a_weakening_as_widening(tmp_path: Path) -> None:
    """Adding a capability to strict lowers its score: one postureScore change, effect widens."""
    old = _snapshot(_policy(tmp_path / "old", looser=False))
    new_root = _policy(tmp_path / "new", looser=False)
    sandbox = new_root / "baseline" / "sandbox.yaml"
    sandbox.write_text(sandbox.read_text().replace("  seccompProfile: onexd-strict\n",
                                                   "  seccompProfile: onexd-strict\n  capabilities: {add: [CHOWN]}\n"))
    (new_root / "baseline" / "bundle.yaml").write_text(
        (new_root / "baseline" / "bundle.yaml").read_text().replace("1.0.0", "1.1.0"))
    changes = score_changes(old, _snapshot(new_root), HOST)
    assert [(c.kind, c.name, c.field, c.effect) for c in changes] == [
        ("SandboxProfile", "strict", "postureScore", "widens")]
    assert changes[0].new < changes[0].old


def test_analyze_cli_prints_every_profile_and_node_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`onexd policy analyze DIR -o json`: one entry per profile and node with score and findings."""
    code, out, _ = run_cli(["policy", "analyze", str(EXAMPLES), "-o", "json", *HOST_FLAGS], capsys)
    assert code == 0
    entries = json.loads(out)
    names = {(e["kind"], e["name"]) for e in entries}
    assert ("profile", "python-small") in names and ("node", "hello") in names
    assert all(0 <= e["score"] <= 100 and isinstance(e["findings"], list) for e in entries)


def test_min_score_fails_validation_on_a_weakening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CI gate: the baseline passes --min-score 88; adding the looser profile fails it (exit 3, named)."""
    strict_only = _policy(tmp_path / "a", looser=False)
    code, _, _ = run_cli(["policy", "validate", str(strict_only), "--min-score", "88", *HOST_FLAGS], capsys)
    assert code == 0
    weakened = _policy(tmp_path / "b", looser=True)
    code, _, err = run_cli(["policy", "validate", str(weakened), "--min-score", "88", *HOST_FLAGS], capsys)
    assert code == 3 and "profile looser scores" in err and "profile strict" not in err


def test_policy_diff_shows_score_moves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`policy diff -o json` includes the postureScore change with old and new scores."""
    old = _policy(tmp_path / "old", looser=False)
    new = _policy(tmp_path / "new", looser=False)
    sandbox = new / "baseline" / "sandbox.yaml"
    sandbox.write_text(sandbox.read_text().replace("timeoutSeconds: 60", "timeoutSeconds: 7200"))
    code, out, _ = run_cli(["policy", "diff", str(old), str(new), "-o", "json", *HOST_FLAGS], capsys)
    assert code == 1
    moves = [c for c in json.loads(out) if c["field"] == "postureScore"]
    assert len(moves) == 1 and moves[0]["name"] == "strict" and moves[0]["new"] < moves[0]["old"]


def test_docs_table_holds_the_score_of_every_shipped_profile_and_node() -> None:
    """docs/forensics.md lists each shipped profile's and node's score on the reference host; it must stay true."""
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "forensics.md").read_text()
    for rel, root in (("policies", BASELINE), ("examples/policies", EXAMPLES)):
        for posture in analyze(_snapshot(root), HOST):
            row = f"| `{rel}` | {posture.subject} | `{posture.name}` | {posture.score} |"
            assert row in text, f"docs/forensics.md is missing or stale: {row}"
