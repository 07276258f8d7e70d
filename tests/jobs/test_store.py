"""JobStore: records survive, pages are newest first, unfinished jobs of a previous life become errors."""

from __future__ import annotations

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
