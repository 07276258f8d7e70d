"""`onexd audit search`: exactly the matching events of a test trail, by principal, node, job, outcome, time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onexd.audit.search import AuditQuery, parse_time, read_trail, search
from onexd.audit.trail import AuditLog
from onexd.errors import UsageError
from tests.conftest import run_cli

DAY = 86400.0
T0 = 1_795_000_000.0  # 2026-11-18T...Z


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _trail(state: Path) -> list[dict[str, object]]:
    """A small trail: ci-bot runs and is denied over two days, alice in between."""
    clock = _Clock()
    log = AuditLog(state / "audit", clock=clock)
    events = [
        (0.0, "authz.decision", "Token:ci-bot", "allowed", {"permission": "nodes:execute", "target": "hello"}),
        (1.0, "job.submitted", "Token:ci-bot", "success", {"job": "j1", "node": "hello"}),
        (2.0, "authz.decision", "Token:ci-bot", "denied", {"permission": "nodes:execute", "target": "wordcount"}),
        (3.0, "authz.decision", "UnixUser:alice", "denied", {"permission": "keys:rotate"}),
        (DAY, "authz.decision", "Token:ci-bot", "denied", {"permission": "policy:reload"}),
        (DAY + 1, "job.finished", "Token:ci-bot", "failure", {"job": "j2", "node": "hello", "status": "failed"}),
    ]
    for offset, type_, principal, outcome, data in events:
        clock.now = T0 + offset
        log.append(type_, principal, outcome, data)
    log.close()
    return list(read_trail(state / "audit"))


def test_search_by_principal_and_outcome_returns_exactly_the_matching_events(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--principal Token:ci-bot --outcome denied: both of ci-bot's denials, nothing of alice's, nothing allowed."""
    trail = _trail(tmp_path)
    code, out, _ = run_cli(["audit", "search", "--state-dir", str(tmp_path), "--principal", "Token:ci-bot",
                            "--outcome", "denied", "-o", "json"], capsys)
    assert code == 0
    expected = [e for e in trail if e["principal"] == "Token:ci-bot" and e["outcome"] == "denied"]
    assert json.loads(out) == expected and len(expected) == 2


def test_search_by_node_covers_decisions_and_job_events(tmp_path: Path) -> None:
    """A node is named as `target` in decisions and `node` in job events; both match."""
    trail = _trail(tmp_path)
    assert [e["seq"] for e in search(trail, AuditQuery(node="hello"))] == [1, 2, 6]
    assert [e["seq"] for e in search(trail, AuditQuery(job="j2"))] == [6]


def test_search_by_time_range_is_half_open(tmp_path: Path) -> None:
    """--since is inclusive, --until exclusive: the first day only."""
    trail = _trail(tmp_path)
    day_one = AuditQuery(principal="Token:ci-bot", since=T0, until=T0 + DAY)
    assert [e["seq"] for e in search(trail, day_one)] == [1, 2, 3]


def test_parse_time_reads_dates_times_and_ages() -> None:
    """ISO dates are UTC midnight; `24h` is a day before now; nonsense is a usage error."""
    assert parse_time("2026-11-24", 0.0) == 1795478400.0
    assert parse_time("2026-11-24T01:00:00Z", 0.0) == 1795478400.0 + 3600
    assert parse_time("24h", 100_000.0) == 100_000.0 - DAY
    with pytest.raises(UsageError):
        parse_time("yesterday-ish", 0.0)


def test_search_of_a_missing_trail_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No STATE/audit: exit 2 with a message, not an empty answer."""
    code, _, err = run_cli(["audit", "search", "--state-dir", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no audit trail" in err
