"""The audit trail: append-only JSON Lines segments under STATE/audit, one sha256 hash chain across them.

Each event passes a pipeline of small steps — redact, enrich (seq, id, ts, correlation id), chain (prevHash,
hash), serialize — and is fsynced before `append` returns, so an action is acknowledged only after its record
is durable. Concurrent appenders share fsyncs (group commit): one writer thread writes whatever is pending,
syncs once, and releases every waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from onexd.audit.events import NewEvent
from onexd.errors import AuditUnavailable as AuditUnavailable
from onexd.logs import correlation_id
from onexd.timestamps import utc

log = logging.getLogger("onexd.audit")
GENESIS = "0" * 64
SEGMENT_RE = re.compile(r"^audit-(\d{12})\.jsonl$")
_SECRET_FIELD = re.compile(r"(?i)(secret_?value|password|passwd|token|api_?key|private_?key|authorization|"
                           r"credential|^key$|^value$)")
REDACTED = "[redacted]"



def segment_name(first_seq: int) -> str:
    return f"audit-{first_seq:012d}.jsonl"


def canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the event without its own hash."""
    return hashlib.sha256(canonical({k: v for k, v in event.items() if k != "hash"})).hexdigest()


def sealed_line(event: dict[str, Any]) -> tuple[str, bytes]:
    """(hash, the record's line): one serialization; the hash goes last, after the bytes it covers."""
    body = canonical(event)
    digest = hashlib.sha256(body).hexdigest()
    return digest, body[:-1] + b',"hash":"' + digest.encode() + b'"}\n'


def redact(data: Any) -> Any:
    """Values under secret-looking field names are replaced: a name is never a reason to record a value."""
    if isinstance(data, dict):
        return {k: (REDACTED if _SECRET_FIELD.search(k) and v not in (None, "") else redact(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob("audit-*.jsonl"):
        m = SEGMENT_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


class _Pending:
    """One record on its way to disk. `done` is a plain lock held until the writer has synced it: cheaper than
    an Event, which matters at tens of thousands of records a second."""

    __slots__ = ("done", "error", "line", "seq")

    def __init__(self, line: bytes, seq: int) -> None:
        self.line, self.seq = line, seq
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()


class AuditLog:
    def __init__(self, directory: Path, max_segment_bytes: int = 64 * 1024 * 1024, keep_segments: int = 100,
                 enforced: bool = True, clock: Callable[[], float] = time.time,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 on_dropped: Callable[[int], None] | None = None,
                 on_rotate: Callable[[int], None] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_segment_bytes = max_segment_bytes
        self.keep_segments = keep_segments
        self.enforced = enforced
        self.clock = clock
        self.on_event = on_event or (lambda e: None)
        self.on_dropped = on_dropped or (lambda n: None)  # best_effort: events lost to a failing disk
        # Called on the writer thread with the last seq of a closing segment (everything up to it is durable).
        self.on_rotate = on_rotate or (lambda seq: None)
        self.dropped = 0
        self._lock = threading.Lock()  # assigns seq and hash in order
        self._cond = threading.Condition(self._lock)
        self._queue: list[_Pending] = []
        self._closed = False
        self.last_seq, self.last_hash, self._file, self._segment_bytes = self._recover()
        self._writer = threading.Thread(target=self._write_loop, name="onexd-audit", daemon=True)
        self._writer.start()

    # --- recovery ------------------------------------------------------------------------------------

    def _recover(self) -> tuple[int, str, Any, int]:
        """Continue the chain after the last complete record; a torn last line (a crash mid-write) is cut."""
        found = segments(self.dir)
        if not found:
            path = self.dir / segment_name(1)
            return 0, GENESIS, open(path, "ab", buffering=0), 0
        _, path = found[-1]
        raw = path.read_bytes()
        good = raw.rfind(b"\n") + 1
        last_seq, last_hash = 0, GENESIS
        lines = raw[:good].splitlines()
        while lines:
            try:
                event = json.loads(lines[-1])
                last_seq, last_hash = int(event["seq"]), str(event["hash"])
                break
            except (ValueError, KeyError, TypeError):
                good -= len(lines.pop()) + 1  # a corrupt last line is cut like a torn one
        if good < len(raw):
            log.warning("cut a torn audit record at the end of the trail",
                        extra={"segment": path.name, "bytes": len(raw) - good})
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        if not lines and len(found) > 1:  # an empty last segment: the chain continues from the one before
            prev = found[-2][1].read_bytes().splitlines()
            if prev:
                event = json.loads(prev[-1])
                last_seq, last_hash = int(event["seq"]), str(event["hash"])
        return last_seq, last_hash, open(path, "ab", buffering=0), good

    # --- appending -----------------------------------------------------------------------------------

    def append(self, type_: str, principal: str | None = None, outcome: str = "success",
               data: dict[str, Any] | None = None, policy: str | None = None) -> int:
        """Record an event; returns its seq once it is on disk. Raises AuditUnavailable in enforced mode."""
        return self.append_many([NewEvent(type_, principal, outcome, data, policy)])[-1]

    def append_many(self, events: Sequence[NewEvent]) -> list[int]:
        """Record several events in order with one wait for the disk (they are chained one after another)."""
        cid = correlation_id.get()
        ts = utc(self.clock())
        built: list[tuple[dict[str, Any], _Pending]] = []
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit trail is closed")
            for type_, principal, outcome, data, policy in events:
                seq = self.last_seq + 1
                event: dict[str, Any] = {
                    "seq": seq, "id": os.urandom(16).hex(), "ts": ts, "type": type_, "principal": principal,
                    "correlationId": cid, "outcome": outcome, "policy": policy, "data": redact(data or {}),
                    "prevHash": self.last_hash,
                }
                digest, line = sealed_line(event)
                event["hash"] = digest
                pending = _Pending(line, seq)
                self.last_seq, self.last_hash = seq, digest
                self._queue.append(pending)
                built.append((event, pending))
            self._cond.notify()
        for _, pending in built:
            pending.done.acquire()
        failed = next((p.error for _, p in built if p.error is not None), None)
        if failed is not None:
            if self.enforced:
                raise AuditUnavailable(f"the audit trail cannot be written ({failed})") from None
            lost = sum(1 for _, p in built if p.error is not None)
            self.dropped += lost
            self.on_dropped(lost)
        for event, pending in built:
            if pending.error is None:
                self.on_event(event)
        return [p.seq for _, p in built]

    async def aappend(self, type_: str, principal: str | None = None, outcome: str = "success",
                      data: dict[str, Any] | None = None, policy: str | None = None) -> int:
        """append() off the event loop (it waits for an fsync); the correlation id travels with the call."""
        return await asyncio.to_thread(self.append, type_, principal, outcome, data, policy)

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
            error: BaseException | None = None
            try:
                data = b"".join(p.line for p in batch)
                if self._segment_bytes and self._segment_bytes + len(data) > self.max_segment_bytes:
                    self._rotate(batch[0].seq)
                _write_all(self._file, data)
                os.fsync(self._file.fileno())
                self._segment_bytes += len(data)
            except Exception as exc:  # the writer must outlive any failure, or every later append waits forever
                error = exc
                if isinstance(exc, OSError):
                    log.error("audit write failed", extra={"why": exc.strerror, "events": len(batch)})
                else:
                    log.exception("audit write failed unexpectedly", extra={"events": len(batch)})
                try:
                    self._repair()
                except Exception:
                    log.exception("audit repair after a failed write failed")
            for p in batch:
                p.error = error
                p.done.release()

    def _repair(self) -> None:
        """After a failed write, cut whatever part of the batch reached the file: the chain on disk stays whole.
        The lost events' seqs are reissued, so seq stays contiguous on disk."""
        with contextlib.suppress(OSError):
            self._file.truncate(self._segment_bytes)
        with self._lock:
            lines = self._last_line()
            if lines is not None:
                event = json.loads(lines)
                self.last_seq, self.last_hash = int(event["seq"]), str(event["hash"])
                for p in self._queue:  # later events chained on the lost ones: re-chain them
                    ev = json.loads(p.line)
                    ev.pop("hash", None)
                    ev["seq"], ev["prevHash"] = self.last_seq + 1, self.last_hash
                    ev["hash"], p.line = sealed_line(ev)
                    p.seq = ev["seq"]
                    self.last_seq, self.last_hash = ev["seq"], ev["hash"]

    def _last_line(self) -> bytes | None:
        for _, path in reversed(segments(self.dir)):
            lines = path.read_bytes().splitlines()
            if lines:
                return lines[-1]
        return b'{"seq": 0, "hash": "' + GENESIS.encode() + b'"}'

    def _rotate(self, first_seq: int) -> None:
        self.on_rotate(first_seq - 1)
        self._file.close()
        self._file = open(self.dir / segment_name(first_seq), "ab", buffering=0)  # noqa: SIM115
        self._segment_bytes = 0
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        old = segments(self.dir)
        for _, path in old[:-self.keep_segments] if len(old) > self.keep_segments else []:
            path.unlink()
            log.info("audit segment removed by retention", extra={"segment": path.name})

    # --- reading -------------------------------------------------------------------------------------

    def read(self, since: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        found = segments(self.dir)
        for index, (_, path) in enumerate(found):
            if index + 1 < len(found) and found[index + 1][0] <= since:
                continue  # every record of this segment is at or before `since`
            for line in path.read_bytes().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and isinstance(event.get("seq"), int) and event["seq"] > since:
                    out.append(event)
                    if len(out) >= limit:
                        return out
        return out

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cond.notify()
        self._writer.join(timeout=10)
        self._file.close()


def _write_all(file: Any, data: bytes) -> None:
    """Write all of data to an unbuffered file. A raw write may be short (a disk filling up writes part of a
    record without an error); the rest is written, and an error then lets _repair cut the partial batch."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(28, "no space left on device (short write)")
        view = view[written:]
