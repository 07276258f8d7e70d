"""Principal lockout (incident response): N strikes — denied decisions or seccomp-blocked system calls — within
T seconds suspend a principal's job submissions for a configured time, until it expires or an operator unlocks.

Pure and clock-injected: the daemon feeds it strikes and asks it before admitting a job; it audits nothing
itself (the callers do, with the values it returns).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from onexd.timestamps import utc


@dataclass(frozen=True, slots=True)
class Lock:
    principal: str
    locked_at: float
    until: float
    strikes: int
    last_strike: str  # what tipped it: `denied nodes:execute`, `blocked syscall mkdir`

    @property
    def reason(self) -> str:
        return (f"{self.principal} is locked out after {self.strikes} denied or blocked actions "
                f"(last: {self.last_strike}) until {utc(self.until)}; "
                "an operator can lift it with `onexctl principal unlock`")

    def as_dict(self) -> dict[str, object]:
        return {"principal": self.principal, "lockedAt": self.locked_at, "until": self.until,
                "strikes": self.strikes, "lastStrike": self.last_strike}


class LockoutTracker:
    """Sliding-window strike counts per principal. Thread-safe (strikes arrive from the loop and from jobs)."""

    def __init__(self, threshold: int, window_s: float, lock_s: float,
                 clock: Callable[[], float] = time.time, max_principals: int = 100_000) -> None:
        if threshold < 1 or window_s <= 0 or lock_s <= 0:
            raise ValueError("lockout needs threshold >= 1 and positive window and lock times")
        self.threshold, self.window_s, self.lock_s, self.clock = threshold, window_s, lock_s, clock
        self.max_principals = max_principals
        self._strikes: dict[str, deque[float]] = {}
        self._locks: dict[str, Lock] = {}
        self._mutex = threading.Lock()

    def strike(self, principal: str, what: str) -> Lock | None:
        """Count one strike; the new Lock when this one reaches the threshold (None otherwise, also while
        already locked: a lock is not extended by what it prevents)."""
        now = self.clock()
        with self._mutex:
            if self._current(principal, now) is not None:
                return None
            window = self._strikes.setdefault(principal, deque())
            window.append(now)
            while window and window[0] <= now - self.window_s:
                window.popleft()
            if len(window) < self.threshold:
                self._bound()
                return None
            lock = Lock(principal, now, now + self.lock_s, len(window), what)
            self._locks[principal] = lock
            del self._strikes[principal]
            return lock

    def locked(self, principal: str) -> Lock | None:
        with self._mutex:
            return self._current(principal, self.clock())

    def unlock(self, principal: str) -> Lock | None:
        """Lift a lock (and forget the strikes); the lock that was lifted, or None if there was none."""
        with self._mutex:
            self._strikes.pop(principal, None)
            lock = self._locks.pop(principal, None)
            return lock if lock is not None and lock.until > self.clock() else None

    def active(self) -> list[Lock]:
        now = self.clock()
        with self._mutex:
            return sorted((lock for lock in self._locks.values() if lock.until > now), key=lambda x: x.principal)

    def _current(self, principal: str, now: float) -> Lock | None:
        lock = self._locks.get(principal)
        if lock is not None and lock.until <= now:
            del self._locks[principal]  # expired: submissions resume on their own
            return None
        return lock

    def _bound(self) -> None:
        # Many principals with a strike or two must not grow memory without bound: drop the stalest windows.
        if len(self._strikes) > self.max_principals:
            for name in sorted(self._strikes, key=lambda n: self._strikes[n][-1])[: len(self._strikes) // 2]:
                del self._strikes[name]
