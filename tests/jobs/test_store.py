"""JobStore: forensics columns round-trip, and a database of an older onexd gains them at open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from onexd.jobs.records import JobRecord
from onexd.jobs.store import JobStore

OLD_SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, principal TEXT NOT NULL, policy_digest TEXT NOT NULL,
  policy_bundles TEXT NOT NULL, created_at REAL NOT NULL, node TEXT, profile TEXT, zone TEXT, exit_code INTEGER,
  stdout TEXT NOT NULL DEFAULT '', stderr TEXT NOT NULL DEFAULT '', truncated INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER, started_at REAL, finished_at REAL, reason TEXT NOT NULL DEFAULT '');
INSERT INTO jobs (id, status, principal, policy_digest, policy_bundles, created_at)
  VALUES ('old1', 'succeeded', 'UnixUser:root', 'sha256:x', '{}', 1.0);
"""


def _record(**kw: object) -> JobRecord:
    return JobRecord(id="j1", status="failed", principal="p", policy_digest="d", policy_bundles={"b": "1.0.0"},
                     created_at=1.0, **kw)  # type: ignore[arg-type]


def test_usage_and_blocked_syscall_round_trip(tmp_path: Path) -> None:
    """Both forensics fields come back as stored: a dict, the string `unknown`, or None."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    usage = {"cpuMs": 12, "memoryPeakBytes": 1 << 20, "pidsPeak": 3, "outputBytes": 5, "wallMs": 40}
    blocked = {"name": "mkdir", "number": 83, "arch": "x86_64", "action": "kill_process", "comm": "mkdir"}
    store.put(_record(usage=usage, blocked_syscall=blocked))
    got = store.get("j1")
    assert got is not None and dict(got.usage or {}) == usage and got.blocked_syscall == blocked
    store.put(_record(blocked_syscall="unknown"))
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
    store.put(_record(blocked_syscall="unknown"))
    store.close()
    again = JobStore(path)  # a second open finds the columns and changes nothing
    got = again.get("j1")
    assert got is not None and got.blocked_syscall == "unknown"
