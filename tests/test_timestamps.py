"""ISO-8601 UTC timestamps: one format for every API field, log line and audit record."""

from __future__ import annotations

from onexd.timestamps import iso, utc


def test_timestamps_are_utc_with_milliseconds_and_a_z() -> None:
    """Seconds since the epoch become `YYYY-MM-DDTHH:MM:SS.mmmZ`; None stays None."""
    assert utc(1_800_000_000.5) == "2027-01-15T08:00:00.500Z"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso(None) is None


def test_milliseconds_are_truncated_never_rounded_up() -> None:
    """A time just before a second boundary stays in its second (as the audit trail always wrote it)."""
    assert utc(1_800_000_000.9999) == "2027-01-15T08:00:00.999Z"
