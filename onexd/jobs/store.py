"""Job records in SQLite (WAL) under the state directory. The only module importing sqlite3."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from onexd.errors import AmbiguousJobId as AmbiguousJobId
from onexd.errors import StorageUnavailable as StorageUnavailable
from onexd.jobs.records import JobRecord

MIN_PREFIX = 8  # like docker: any unique prefix of at least this many characters names a job
_HEX = frozenset("0123456789abcdef")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  principal TEXT NOT NULL,
  policy_digest TEXT NOT NULL,
  policy_bundles TEXT NOT NULL,
  created_at REAL NOT NULL,
  node TEXT, profile TEXT, zone TEXT,
  exit_code INTEGER,
  stdout TEXT NOT NULL DEFAULT '',
  stderr TEXT NOT NULL DEFAULT '',
  truncated INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER,
  started_at REAL, finished_at REAL,
  reason TEXT NOT NULL DEFAULT '',
  usage TEXT,
  blocked_syscall TEXT,
  pool TEXT
);
CREATE INDEX IF NOT EXISTS jobs_principal ON jobs (principal, id);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
"""
# Columns added after the first release, with their type: databases of older versions gain them at open.
_ADDED_COLUMNS = {"usage": "TEXT", "blocked_syscall": "TEXT", "pool": "TEXT"}
_JSON_COLUMNS = ("usage", "blocked_syscall", "pool")
_COLUMNS = [f.name for f in fields(JobRecord) if f.name != "extra"]


def _row(record: JobRecord) -> dict[str, Any]:
    row = {c: getattr(record, c) for c in _COLUMNS}
    row["policy_bundles"] = json.dumps(dict(record.policy_bundles), sort_keys=True)
    row["truncated"] = int(record.truncated)
    for column in _JSON_COLUMNS:
        value = row[column]
        row[column] = None if value is None else json.dumps(value if isinstance(value, str) else dict(value),
                                                            sort_keys=True)
    return row


def _record(row: sqlite3.Row) -> JobRecord:
    data = dict(row)
    data["policy_bundles"] = json.loads(data["policy_bundles"])
    data["truncated"] = bool(data["truncated"])
    for column in _JSON_COLUMNS:
        data[column] = None if data.get(column) is None else json.loads(data[column])
    data["pool"] = data["pool"] or {}  # not pooled (or written before the pool)
    return JobRecord(**data)


class JobStore:
    """Thread-safe (one connection, one lock): the job service calls it from the loop and from workers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash of onexd loses nothing committed
            self._db.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Add the columns a database written by an older onexd lacks (nothing is rewritten)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageUnavailable(f"the job database cannot be written ({exc})") from None

    def put(self, record: JobRecord) -> None:
        row = _row(record)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        updates = ", ".join(f"{c}=excluded.{c}" for c in row if c != "id")
        with self._tx() as db:
            db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",  # noqa: S608 - column names are ours
                       row)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def resolve(self, id_or_prefix: str, principal: str | None = None) -> str | None:
        """The full id of the one job whose id is, or starts with, `id_or_prefix` (at least MIN_PREFIX hex
        characters), among `principal`'s jobs (None: everyone's); None when no job matches. Raises
        AmbiguousJobId when several do."""
        if len(id_or_prefix) < MIN_PREFIX or not set(id_or_prefix) <= _HEX:
            return None
        # Ids are lower-case hex, so the prefix range [p, p + "g") holds exactly the ids starting with p.
        sql, args = "SELECT id FROM jobs WHERE id >= ? AND id < ?", [id_or_prefix, id_or_prefix + "g"]
        if principal is not None:
            sql, args = sql + " AND principal = ?", [*args, principal]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id LIMIT 2", args).fetchall()
        if len(rows) > 1:
            raise AmbiguousJobId(f"job id prefix {id_or_prefix} matches more than one job; give more characters")
        return str(rows[0][0]) if rows else None

    def query(self, principal: str | None, limit: int, before: str | None = None,
             status: str | None = None) -> list[JobRecord]:
        """Newest first; principal None means all principals."""
        where, args = [], []
        if principal is not None:
            where.append("principal = ?")
            args.append(principal)
        if before:
            where.append("id < ?")
            args.append(before)
        if status:
            where.append("status = ?")
            args.append(status)
        # Only fixed clauses are joined; every value is a bound parameter.
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [_record(r) for r in rows]

    def fail_unfinished(self, reason: str, now: float) -> list[str]:
        """Mark queued/running jobs of a previous life as error (called once at start-up)."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status IN ('queued', 'running')")]
            db.execute("UPDATE jobs SET status='error', reason=?, finished_at=? WHERE status IN ('queued', 'running')",
                       (reason, now))
        return ids

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM jobs").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
