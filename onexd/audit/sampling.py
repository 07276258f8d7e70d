"""Aggregated auditing of routine reads: a Prometheus scrape every 15 s must not add 5,760 fsynced events a day
to the trail (and keep every sink's lag above 0), yet who reads metrics stays on record.

Allowed `monitoring:read` and `audit:read` decisions are audited for a principal's first read and then at most
once per window, each audited event carrying how many reads it stands for (`reads`). Denials are always audited,
one by one. For `audit:read` this also keeps `onexctl audit tail -f` from feeding the trail it follows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SAMPLED_PERMISSIONS = frozenset({"monitoring:read", "audit:read"})
WINDOW_S = 3600.0


class ReadSampler:
    def __init__(self, window_s: float = WINDOW_S, permissions: frozenset[str] = SAMPLED_PERMISSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self.permissions, self.clock = window_s, permissions, clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # (principal, permission) -> (audited at, reads)

    def take(self, principal: str, permission: str, allowed: bool) -> dict[str, int] | None:
        """Extra audit data when this decision is to be audited now ({} for decisions never sampled), or None
        when it is folded into the next audited read."""
        if not allowed or permission not in self.permissions:
            return {}
        key, now = (principal, permission), self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.window_s:
                self._last[key] = (last[0], last[1] + 1)
                return None
            self._last[key] = (now, 0)
        return {"reads": 1 + (last[1] if last else 0)}
