"""Shipping the trail to sinks, at least once, each sink on its own.

Each sink has its own worker (a thread), cursor (the last seq it acknowledged, persisted after every
acknowledged batch), exponential backoff with jitter and timeout, so a slow or dead sink never delays another.
A failed batch is retried whole and never skipped: a receiver sees every seq and can de-duplicate by it. Only a
best-effort sink (UDP) moves on past events it could not send, and those are counted as dropped.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from onexd.audit.sinks import DeliveryError, Sink
from onexd.audit.trail import AuditLog
from onexd.fsutil import atomic_write

log = logging.getLogger("onexd.audit")
BACKOFF_BASE_S, BACKOFF_MAX_S = 1.0, 300.0
MIN_GAP_S = 0.2  # a woken worker still batches: at most five rounds a second per sink


class ShippingObserver(Protocol):
    """Where shipping outcomes are counted (onexd.metrics.Metrics implements it)."""

    def shipped_events(self, sink: str, events: int) -> None: ...
    def sink_failed(self, sink: str) -> None: ...
    def sink_retried(self, sink: str) -> None: ...
    def sink_dropped(self, sink: str, events: int) -> None: ...


class _Uncounted:
    def shipped_events(self, sink: str, events: int) -> None: ...
    def sink_failed(self, sink: str) -> None: ...
    def sink_retried(self, sink: str) -> None: ...
    def sink_dropped(self, sink: str, events: int) -> None: ...


@dataclass
class SinkState:
    cursor: int = 0
    failures: int = 0
    next_try: float = 0.0
    last_error: str = ""


def backoff_s(failures: int, jitter: float) -> float:
    """Delay before the next try after `failures` consecutive failures; jitter in [0.5, 1.5)."""
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** (failures - 1)) * jitter)


def _why(exc: Exception) -> str:
    if isinstance(exc, DeliveryError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


class Shipper:
    def __init__(self, trail: AuditLog, sinks: list[Sink], cursor_file: Path, batch_size: int = 500,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 observer: ShippingObserver | None = None, batch_sizes: dict[str, int] | None = None) -> None:
        self.trail, self.sinks, self.cursor_file = trail, sinks, cursor_file
        self.batch_sizes = {s.name: (batch_sizes or {}).get(s.name, batch_size) for s in sinks}
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.observer: ShippingObserver = observer or _Uncounted()
        self._save_lock = threading.Lock()
        self._sink_locks = {s.name: threading.Lock() for s in sinks}
        self._stop = threading.Event()
        self._wake = {s.name: threading.Event() for s in sinks}
        self._threads: list[threading.Thread] = []
        saved = json.loads(cursor_file.read_text()) if cursor_file.exists() else {}
        self.state = {s.name: SinkState(cursor=int(saved.get(s.name, 0))) for s in sinks}

    def _save(self) -> None:
        with self._save_lock:
            atomic_write(self.cursor_file, json.dumps({n: s.cursor for n, s in self.state.items()}).encode())

    def ship_sink(self, sink: Sink) -> int | None:
        """One round for one sink: batches until it is caught up or fails. None when it is backing off."""
        st = self.state[sink.name]
        with self._sink_locks[sink.name]:
            if self.clock() < st.next_try:
                return None
            sent = 0
            while True:
                batch = self.trail.read(st.cursor, self.batch_sizes[sink.name])
                if not batch:
                    return sent
                if st.failures:
                    self.observer.sink_retried(sink.name)
                try:
                    result = sink.send(batch)
                except Exception as exc:  # any failure: the batch is sent again later, whole
                    st.failures += 1
                    st.next_try = self.clock() + backoff_s(st.failures, self.rng.uniform(0.5, 1.5))
                    st.last_error = _why(exc)
                    self.observer.sink_failed(sink.name)
                    log.warning("audit shipping failed", extra={
                        "sink": sink.name, "why": st.last_error, "failures": st.failures,
                        "retryInSeconds": round(st.next_try - self.clock(), 1), "fromSeq": batch[0]["seq"]})
                    return sent
                if st.failures:
                    log.info("audit shipping recovered", extra={"sink": sink.name, "afterFailures": st.failures})
                st.cursor, st.failures, st.last_error, st.next_try = batch[-1]["seq"], 0, "", 0.0
                sent += result.sent
                self.observer.shipped_events(sink.name, result.sent)
                if result.dropped:
                    self.observer.sink_dropped(sink.name, result.dropped)
                    log.warning("audit events dropped (best-effort sink)",
                                extra={"sink": sink.name, "dropped": result.dropped})
                self._save()

    def ship(self) -> dict[str, int]:
        """One round over every sink in turn (tests and the final flush at stop; the daemon runs workers)."""
        sent: dict[str, int] = {}
        for sink in self.sinks:
            n = self.ship_sink(sink)
            if n is not None:
                sent[sink.name] = n
        return sent

    # --- one worker thread per sink ---------------------------------------------------------------------

    def start(self, interval_s: float) -> None:
        """Start one worker per sink: each ships every interval_s (sooner after a wake()), or when its backoff
        ends, independently of the others."""
        for sink in self.sinks:
            thread = threading.Thread(target=self._work, args=(sink, interval_s), daemon=True,
                                      name=f"audit-sink-{sink.name}")
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """New events are on disk: workers that are not backing off ship now instead of at the next tick."""
        for event in self._wake.values():
            event.set()

    def _work(self, sink: Sink, interval_s: float) -> None:
        wake = self._wake[sink.name]
        while not self._stop.is_set():
            wake.clear()
            try:
                self.ship_sink(sink)
            except Exception:  # a bug must not end the worker: log it and try again next round
                log.exception("audit shipping worker error", extra={"sink": sink.name})
            st = self.state[sink.name]
            wait = max(0.05, st.next_try - self.clock()) if st.failures else interval_s
            if st.failures:  # backing off: only the stop event ends the wait early
                self._stop.wait(wait)
            elif not self._stop.wait(MIN_GAP_S):
                wake.wait(max(0.0, wait - MIN_GAP_S))

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for event in self._wake.values():
            event.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def flush(self, timeout_s: float) -> None:
        """A last round for every sink at once (at stop), waiting at most timeout_s for the slowest."""
        self._stop.set()
        threads = [threading.Thread(target=self.ship_sink, args=(s,), daemon=True) for s in self.sinks]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def lag(self) -> dict[str, int]:
        last = self.trail.last_seq
        return {n: max(0, last - s.cursor) for n, s in self.state.items()}

    def failing(self) -> dict[str, str]:
        return {n: s.last_error for n, s in self.state.items() if s.failures}

