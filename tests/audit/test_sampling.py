"""Aggregated auditing of routine reads (metrics scrapes), with an injected clock."""

from __future__ import annotations

from onexd.audit.sampling import ReadSampler


def test_scrapes_are_audited_once_per_window_with_their_count() -> None:
    """A principal's first metrics read is audited; later ones within the hour fold into the next audited one."""
    now = [0.0]
    sampler = ReadSampler(window_s=3600, clock=lambda: now[0])
    assert sampler.take("UnixUser:prom", "monitoring:read", True) == {"reads": 1}
    for _ in range(239):  # an hour of 15 s scrapes
        now[0] += 15
        assert sampler.take("UnixUser:prom", "monitoring:read", True) is None
    now[0] += 15
    assert sampler.take("UnixUser:prom", "monitoring:read", True) == {"reads": 240}
    assert sampler.take("UnixUser:other", "monitoring:read", True) == {"reads": 1}


def test_denials_and_other_permissions_are_always_audited() -> None:
    """Only allowed monitoring and audit reads are sampled: a denial, or any other permission, is audited every
    time."""
    sampler = ReadSampler(clock=lambda: 0.0)
    sampler.take("UnixUser:prom", "monitoring:read", True)
    assert sampler.take("UnixUser:prom", "monitoring:read", False) == {}
    assert sampler.take("UnixUser:prom", "audit:read", False) == {}
    assert sampler.take("UnixUser:prom", "jobs:read", True) == {}
    assert sampler.take("UnixUser:prom", "jobs:read", True) == {}


def test_audit_reads_are_sampled_like_scrapes() -> None:
    """tail -f's polls: the first allowed audit read is audited, the next ones fold into the hourly count."""
    now = [0.0]
    sampler = ReadSampler(clock=lambda: now[0])
    assert sampler.take("UnixUser:ops", "audit:read", True) == {"reads": 1}
    assert sampler.take("UnixUser:ops", "audit:read", True) is None
    now[0] = 3600.0
    assert sampler.take("UnixUser:ops", "audit:read", True) == {"reads": 2}
