"""ISO-8601 UTC timestamps with milliseconds (`2026-01-02T03:04:05.678Z`): the one formatter every API field,
log line and record uses."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO-8601 UTC with milliseconds; None stays None."""
    return None if ts is None else utc(ts)


def utc(ts: float) -> str:
    """Seconds since the epoch as ISO-8601 UTC with milliseconds (truncated, never rounded into the future)."""
    return datetime.fromtimestamp(int(ts * 1000) / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
