"""Audit shipping in a running daemon (fake runtime): metrics that tell the truth, scrapes that do not flood
the trail."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon

pytestmark = pytest.mark.integration


def _metrics(d: Daemon) -> str:
    return subprocess.run(["curl", "-s", "--unix-socket", str(d.socket), "http://onexd/metrics"],
                          capture_output=True, text=True, check=True).stdout


def _value(text: str, series: str) -> float | None:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _last_seq(d: Daemon) -> int:
    return int(d.curl("GET", "/v1/audit?since=0&limit=1")[1]["lastSeq"])


def test_failing_sink_counts_healthy_sink_reads_lag_zero_scrapes_do_not_flood(
        daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """A sink whose receiver is down moves the failure counter; a healthy one reads lag 0 at each scrape; twenty
    scrapes add at most one audit event (the first read, aggregated after)."""
    with socket.socket() as s:  # a port nobody listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    d = daemons(backend="fake", extra={"audit": {"shipEverySeconds": 1, "sinks": [
        {"name": "archive", "type": "file", "path": str(tmp_path / "archive.jsonl")},
        {"name": "dead", "type": "syslog", "address": f"tcp://127.0.0.1:{dead_port}", "timeoutSeconds": 2}]}})
    d.start()
    deadline = time.monotonic() + 20
    while True:
        text = _metrics(d)
        failures = _value(text, 'onexd_audit_shipping_failures_total{sink="dead"}') or 0
        if failures >= 1 and _value(text, 'onexd_audit_shipping_lag_events{sink="archive"}') == 0:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
    before = _last_seq(d)  # this read is audited (audit:read); scrapes after it are folded
    time.sleep(0.5)  # the new event wakes the sinks' workers: shipped well within this
    lags = []
    for _ in range(20):
        text = _metrics(d)
        lags.append(_value(text, 'onexd_audit_shipping_lag_events{sink="archive"}'))
        time.sleep(0.05)
    assert _last_seq(d) - before <= 2  # the audit:read of _last_seq itself (+ one scrape at most)
    assert set(lags) == {0.0}, lags
    assert (_value(text, 'onexd_audit_shipping_lag_events{sink="dead"}') or 0) > 0
    assert _value(text, 'onexd_audit_shipped_events_total{sink="archive"}')
    log = d.log.read_text()
    assert "audit shipping failed" in log and "ECONNREFUSED" in log
