"""JobStore: records survive, pages are newest first, unfinished jobs of a previous life become errors; the
forensics columns round-trip, and a database of an older onexd gains them at open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from onexd.jobs.records import JobRecord
from onexd.jobs.store import JobStore


def _record(job_id: str, principal: str = "alice", status: str = "queued") -> JobRecord:
    return JobRecord(id=job_id, status=status, principal=principal, policy_digest="d", policy_bundles={"b": "1"},
                     created_at=1_800_000_000.0)


def test_records_round_trip_and_update_in_place(tmp_path: Path) -> None:
    """put then get returns the record; a second put with the same id replaces it."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.put(_record("a1"))
    store.put(_record("a1", status="succeeded"))
    got = store.get("a1")
    assert got is not None and got.status == "succeeded" and got.policy_bundles == {"b": "1"}
    assert store.count() == 1 and store.get("missing") is None
    store.close()


def test_query_pages_newest_first_by_principal_and_status(tmp_path: Path) -> None:
    """Pages go by id, newest first; `before` continues a page; principal and status filter."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    for i, who in enumerate(["alice", "bob", "alice", "alice"]):
        store.put(_record(f"j{i}", who, "failed" if i == 2 else "queued"))
    assert [r.id for r in store.query("alice", 2)] == ["j3", "j2"]
    assert [r.id for r in store.query("alice", 2, before="j2")] == ["j0"]
    assert [r.id for r in store.query(None, 10, status="failed")] == ["j2"]
    store.close()


def test_unfinished_jobs_of_a_previous_life_become_errors(tmp_path: Path) -> None:
    """After a restart, queued and running jobs are marked error with the reason; finished ones stay."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.put(_record("q", status="queued"))
    store.put(_record("r", status="running"))
    store.put(_record("s", status="succeeded"))
    assert sorted(store.fail_unfinished("daemon restarted", 1_800_000_100.0)) == ["q", "r"]
    assert [store.get(i).status for i in ("q", "r", "s")] == ["error", "error", "succeeded"]  # type: ignore[union-attr]
    store.close()


OLD_SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, principal TEXT NOT NULL, policy_digest TEXT NOT NULL,
  policy_bundles TEXT NOT NULL, created_at REAL NOT NULL, node TEXT, profile TEXT, zone TEXT, exit_code INTEGER,
  stdout TEXT NOT NULL DEFAULT '', stderr TEXT NOT NULL DEFAULT '', truncated INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER, started_at REAL, finished_at REAL, reason TEXT NOT NULL DEFAULT '');
INSERT INTO jobs (id, status, principal, policy_digest, policy_bundles, created_at)
  VALUES ('old1', 'succeeded', 'UnixUser:root', 'sha256:x', '{}', 1.0);
"""


def _forensic_record(**kw: object) -> JobRecord:
    return JobRecord(id="j1", status="failed", principal="p", policy_digest="d", policy_bundles={"b": "1.0.0"},
                     created_at=1.0, **kw)  # type: ignore[arg-type]


def test_usage_and_blocked_syscall_round_trip(tmp_path: Path) -> None:
    """Both forensics fields come back as stored: a dict, the string `unknown`, or None."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    usage = {"cpuMs": 12, "memoryPeakBytes": 1 << 20, "pidsPeak": 3, "outputBytes": 5, "wallMs": 40}
    blocked = {"name": "mkdir", "number": 83, "arch": "x86_64", "action": "kill_process", "comm": "mkdir"}
    store.put(_forensic_record(usage=usage, blocked_syscall=blocked))
    got = store.get("j1")
    assert got is not None and dict(got.usage or {}) == usage and got.blocked_syscall == blocked
    store.put(_forensic_record(blocked_syscall="unknown"))
    got = store.get("j1")
    assert got is not None and got.blocked_syscall == "unknown" and got.usage is None


def test_database_of_an_older_version_is_migrated_in_place(tmp_path: Path) -> None:
    """Opening adds the new columns; old rows read with usage and blockedSyscall null; new rows store them."""
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    store = JobStore(path)
    old = store.get("old1")
    assert old is not None and old.usage is None and old.blocked_syscall is None
    store.put(_forensic_record(blocked_syscall="unknown"))
    store.close()
    again = JobStore(path)  # a second open finds the columns and changes nothing
    got = again.get("j1")
    assert got is not None and got.blocked_syscall == "unknown"
