"""Sinks: RFC 5424 syslog over unix and udp, file appends, cursors and backoff (with an injected clock)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

from onexd.audit.shipper import FileSink, Shipper, SyslogSink, rfc5424
from onexd.audit.trail import AuditLog

RFC5424 = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) onexd (\d+) (\S+) \[onexd@32473 seq=\"(\d+)\" type=\"[^\"]*\" "
                     r"outcome=\"[^\"]*\" hash=\"[0-9a-f]{64}\"\] (\{.*\})$")


def _trail(tmp_path: Path, n: int) -> AuditLog:
    trail = AuditLog(tmp_path / "audit")
    for i in range(n):
        trail.append("test.event", "UnixUser:root", "success" if i % 2 else "failure", {"i": i})
    return trail


def test_rfc5424_message_shape(tmp_path: Path) -> None:
    """PRI (security facility; warning for failures), version 1, timestamp, host, app, pid, msgid, SD, JSON."""
    trail = _trail(tmp_path, 2)
    events = trail.read(0, 10)
    trail.close()
    for event in events:
        match = RFC5424.match(rfc5424(event, "host-1").decode())
        assert match, rfc5424(event, "host-1")
        pri = int(match.group(1))
        assert pri // 8 == 13 and pri % 8 == (4 if event["outcome"] == "failure" else 6)
        assert match.group(3) == "host-1" and int(match.group(6)) == event["seq"]
        assert json.loads(match.group(7))["hash"] == event["hash"]


def test_syslog_over_unix_and_udp_delivers_every_event(tmp_path: Path) -> None:
    """A unix datagram socket and a UDP socket on loopback each receive one RFC 5424 message per event."""
    trail = _trail(tmp_path, 5)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(str(tmp_path / "log.sock"))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        sinks: list[Any] = [SyslogSink("u", f"unix://{tmp_path / 'log.sock'}"),
                            SyslogSink("d", f"udp://127.0.0.1:{udp.getsockname()[1]}")]
        shipper = Shipper(trail, sinks, tmp_path / "cursors.json")
        assert shipper.ship() == {"u": 5, "d": 5}
        for sock in (unix, udp):
            sock.settimeout(2)
            seqs = [int(RFC5424.match(sock.recv(65536).decode()).group(6)) for _ in range(5)]  # type: ignore[union-attr]
            assert seqs == [1, 2, 3, 4, 5]
    finally:
        unix.close()
        udp.close()
        trail.close()


class _Flaky:
    name = "flaky"

    def __init__(self) -> None:
        self.up = False
        self.got: list[int] = []

    def send(self, events: list[dict[str, Any]]) -> None:
        if not self.up:
            raise OSError("receiver down")
        self.got += [e["seq"] for e in events]


def test_failures_back_off_and_nothing_is_skipped(tmp_path: Path) -> None:
    """A failing sink is retried later (exponential backoff), the cursor survives a restart, no seq is missed."""
    trail = _trail(tmp_path, 12)
    now = [1000.0]
    sink = _Flaky()
    shipper = Shipper(trail, [sink], tmp_path / "cursors.json", batch_size=5, clock=lambda: now[0])
    shipper.ship()
    first_retry = shipper.state["flaky"].next_try - now[0]
    assert 0.5 <= first_retry <= 1.5 and sink.got == []
    shipper.ship()  # still backing off: not even tried
    now[0] += 2
    shipper.ship()
    assert 1.0 <= shipper.state["flaky"].next_try - now[0] <= 3.0  # second failure: doubled
    sink.up = True
    now[0] += 4
    assert shipper.ship() == {"flaky": 12} and sink.got == list(range(1, 13))
    for i in range(3):
        trail.append("later", None, "success", {"i": i})
    restarted = Shipper(trail, [sink], tmp_path / "cursors.json", clock=lambda: now[0])
    restarted.ship()
    assert sink.got == list(range(1, 16))
    archive = tmp_path / "archive.jsonl"
    Shipper(trail, [FileSink("archive", archive)], tmp_path / "c2.json").ship()
    assert [json.loads(line)["seq"] for line in archive.read_text().splitlines()] == list(range(1, 16))
    trail.close()
