"""The composition root: every part built from the config and an injected clock, nothing started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onexd.audit.shipper import Shipper
from onexd.audit.sinks import SendResult
from onexd.audit.trail import AuditLog
from onexd.composition import compose
from onexd.config import config_from_data
from onexd.metrics import Metrics
from onexd.runtime.fake import FakeRuntime


def test_compose_builds_the_parts_from_config_and_clock(tmp_path: Path, staging_dir: Path) -> None:
    """With the fake backend every part is built and wired; the injected clock stamps the trail; no job runs."""
    config = config_from_data({"stateDir": str(tmp_path / "state"), "policyDir": str(tmp_path / "policies"),
                               "runtime": {"backend": "fake"}, "secrets": {"stagingDir": str(staging_dir)}}, "test")
    parts = compose(config, lambda: True, clock=lambda: 1_800_000_000.0)
    try:
        assert isinstance(parts.runtime, FakeRuntime) and parts.runtime.runs == []
        assert parts.api.policy is parts.policy and parts.api.jobs is parts.jobs
        assert parts.api.engine_ok() is True
        parts.audit.append("daemon.start", "onexd", "success", {})
        event = parts.audit.read()[-1]
        assert event["ts"].startswith("2027-01-15T08:00:00")
        assert parts.metrics.audit_events._value.get() >= 1
    finally:
        parts.audit.close()
        parts.store.close()


class _Failing:
    name = "broken"

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        raise OSError("sink down")


def test_a_failed_shipping_batch_is_counted(tmp_path: Path) -> None:
    """A sink that raises counts one failure for its name and its batch stays unacknowledged (the shipper
    retries it)."""
    metrics = Metrics()
    trail = AuditLog(tmp_path / "audit")
    try:
        trail.append("daemon.start", "onexd", "success", {})
        shipper = Shipper(trail, [_Failing()], tmp_path / "cursors.json", observer=metrics)
        assert shipper.ship() == {"broken": 0}
        assert metrics.shipping_failures.labels("broken")._value.get() == 1.0
        assert shipper.lag() == {"broken": 1} and shipper.failing() == {"broken": "OSError"}
    finally:
        trail.close()


def test_composed_trail_checkpoints_at_each_segment_boundary(tmp_path: Path, staging_dir: Path) -> None:
    """The trail's segment rotation reaches the checkpointer through the constructor wiring: each closed
    segment ends exactly at a signed checkpoint, and the trail verifies."""
    config = config_from_data({"stateDir": str(tmp_path / "state"), "policyDir": str(tmp_path / "policies"),
                               "runtime": {"backend": "fake"}, "secrets": {"stagingDir": str(staging_dir)},
                               "audit": {"maxSegmentBytes": 4000, "checkpoint": {"everyEvents": 100000}}}, "test")
    parts = compose(config, lambda: True)
    try:
        for i in range(60):
            parts.audit.append("daemon.stop", "onexd", "success", {"pid": i})
        segments = sorted((tmp_path / "state" / "audit").glob("audit-*.jsonl"))
        assert len(segments) > 1
        checkpoints = (tmp_path / "state" / "audit" / "checkpoints.jsonl").read_text().splitlines()
        assert len(checkpoints) >= len(segments) - 1
    finally:
        parts.audit.close()
        parts.store.close()


def test_trail_drops_are_counted_apart_from_sink_drops(tmp_path: Path, staging_dir: Path) -> None:
    """Events the best-effort trail loses count under sink "(trail)" of the labelled drop counter (a bare
    increment of a labelled counter would raise inside the trail)."""
    config = config_from_data({"stateDir": str(tmp_path / "state"), "policyDir": str(tmp_path / "policies"),
                               "runtime": {"backend": "fake"}, "secrets": {"stagingDir": str(staging_dir)},
                               "audit": {"delivery": "best_effort"}}, "test")
    parts = compose(config, lambda: True)
    try:
        parts.audit.on_dropped(3)
        parts.metrics.sink_dropped("udp", 2)
        text = parts.metrics.render().decode()
        assert 'onexd_audit_events_dropped_total{sink="(trail)"} 3.0' in text
        assert 'onexd_audit_events_dropped_total{sink="udp"} 2.0' in text
    finally:
        parts.audit.close()
        parts.store.close()
