"""Searching the audit trail for incident response: who did what, on which node or job, with what outcome, when.

Pure matching over events (the trail's own JSON objects) plus a reader of the segment files, so `onexd audit
search` works on a state directory without a running daemon.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from onexd.audit.trail import segments
from onexd.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OUTCOMES = ("success", "failure", "allowed", "denied")


def parse_time(text: str, now: float) -> float:
    """`2026-11-24`, `2026-11-24T10:00:00Z` (UTC unless an offset is given), or an age: `30m`, `24h`, `7d`."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - int(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not a time: give an ISO 8601 date or time, or an age like 24h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def event_time(event: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Every given criterion must match; none given matches everything."""

    principal: str | None = None
    node: str | None = None
    job: str | None = None
    outcome: str | None = None
    type: str | None = None  # an exact type, or a prefix ending in '.' (`job.`)
    since: float | None = None
    until: float | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        if self.principal is not None and event.get("principal") != self.principal:
            return False
        if self.outcome is not None and event.get("outcome") != self.outcome:
            return False
        if self.type is not None:
            kind = str(event.get("type", ""))
            if not (kind == self.type or (self.type.endswith(".") and kind.startswith(self.type))):
                return False
        # A job's events name it as `job`; a decision about running a node names it as `target`.
        if self.node is not None and self.node not in (data.get("node"), data.get("target")):
            return False
        if self.job is not None and data.get("job") != self.job:
            return False
        if self.since is not None or self.until is not None:
            ts = event_time(event)
            if ts is None or (self.since is not None and ts < self.since) or \
                    (self.until is not None and ts >= self.until):
                return False
        return True


def search(events: Iterable[dict[str, Any]], query: AuditQuery, limit: int | None = None) -> list[dict[str, Any]]:
    """Matching events in trail order (oldest first), at most limit."""
    out = []
    for event in events:
        if query.matches(event):
            out.append(event)
            if limit is not None and len(out) >= limit:
                break
    return out


def read_trail(directory: Path) -> Iterator[dict[str, Any]]:
    """Every event of the trail's segments in order; an unreadable line is skipped (`audit verify` names it)."""
    for _, path in segments(directory):
        with path.open("rb") as stream:
            for line in stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event
