"""Shipping: RFC 5424 and local syslog formats, framing, the size cap, cursors and backoff (with an injected
clock), one worker per sink, and the metrics a shipper moves."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from onexd.addresses import parse_syslog_address
from onexd.audit.shipper import Shipper
from onexd.audit.sinks import FileSink, SendResult, make_sink
from onexd.audit.sinks.rfc5424 import SyslogFormat, format_event, frame, msgid
from onexd.audit.trail import AuditLog
from onexd.config import AuditSink
from onexd.metrics import Metrics

RFC5424 = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) onexd (\d+|-) (\S{1,32}) \[onexd@0 seq=\"(\d+)\" type=\"[^\"]*\" "
                     r"outcome=\"[^\"]*\" hash=\"[0-9a-f]{64}\"\] (\{.*\})$")


def _trail(tmp_path: Path, n: int, type_: str = "test.event") -> AuditLog:
    trail = AuditLog(tmp_path / "audit")
    for i in range(n):
        trail.append(type_, "UnixUser:root", "success" if i % 2 else "failure", {"i": i})
    return trail


def _sink(**fields: Any) -> AuditSink:
    return AuditSink.model_validate({"name": "s", "type": "syslog", **fields})


def test_rfc5424_message_shape(tmp_path: Path) -> None:
    """PRI (security facility; warning for failures), version 1, timestamp, host, app, pid, msgid, SD, JSON."""
    trail = _trail(tmp_path, 2)
    events = trail.read(0, 10)
    trail.close()
    for event in events:
        text = format_event(event, SyslogFormat("host-1")).decode()
        match = RFC5424.match(text)
        assert match, text
        pri = int(match.group(1))
        assert pri // 8 == 13 and pri % 8 == (4 if event["outcome"] == "failure" else 6)
        assert match.group(3) == "host-1" and int(match.group(6)) == event["seq"]
        assert json.loads(match.group(7))["hash"] == event["hash"]


def test_msgids_fit_rfc5424_and_the_sd_id_is_configurable(tmp_path: Path) -> None:
    """Every key event type becomes a MSGID of at most 32 characters; the SD-ID is the sink's, never 32473."""
    for type_ in ("key.secret-store-data-key-created", "key.secret-store-data-key-rotated", "x" * 40):
        assert len(msgid(type_)) <= 32
    assert msgid("key.secret-store-data-key-rotated") == "secret-store-data-key-rotated"
    trail = _trail(tmp_path, 1)
    event = trail.read(0, 1)[0]
    trail.close()
    assert b"[acme@99999 seq=" in format_event(event, SyslogFormat("h", sd_id="acme@99999"))
    assert b"32473" not in format_event(event, SyslogFormat("h"))
    with pytest.raises(ValueError, match="sdId"):
        _sink(address="tcp://127.0.0.1:514", sdId="bad id]")


def test_an_event_over_the_cap_becomes_a_marker_with_its_seq_and_hash(tmp_path: Path) -> None:
    """A 20 KB event under an 8 KiB cap ships as one valid message naming seq, hash and where to fetch it."""
    trail = AuditLog(tmp_path / "audit")
    trail.append("policy.reload", "UnixUser:root", "success", {"body": "x" * 20_000})
    event = trail.read(0, 1)[0]
    trail.close()
    for style in ("rfc5424", "local"):
        message = format_event(event, SyslogFormat("h", max_bytes=8192, style=style))
        assert len(message) <= 8192
        marker = json.loads(message[message.index(b"{"):])
        assert marker == {"truncated": True, "seq": 1, "type": "policy.reload", "hash": event["hash"],
                          "bytes": marker["bytes"], "fetch": "/v1/audit?since=0&limit=1"}
        assert marker["bytes"] > 20_000


def test_framing_octet_counting_and_lf() -> None:
    """RFC 6587: `LEN SP MSG` by default, `MSG LF` when asked."""
    assert frame(b"<110>1 abc", "octet-counting") == b"10 <110>1 abc"
    assert frame(b"<110>1 abc", "lf") == b"<110>1 abc\n"


def test_local_format_is_what_dev_log_readers_parse(tmp_path: Path) -> None:
    """unix:// defaults to the BSD-style line (`<PRI>Mmm dd hh:mm:ss onexd[pid]: JSON`)."""
    trail = _trail(tmp_path, 1)
    event = trail.read(0, 1)[0]
    trail.close()
    assert _sink(address="unix:///dev/log").syslog_format == "local"
    text = format_event(event, SyslogFormat("h", style="local", procid="42")).decode()
    assert re.match(r"^<108>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d onexd\[42\]: \{", text), text
    assert json.loads(text.split(": ", 1)[1])["seq"] == 1


def test_syslog_over_unix_and_udp_delivers_every_event(tmp_path: Path) -> None:
    """A unix datagram socket and a UDP socket on loopback each receive one message per event."""
    trail = _trail(tmp_path, 5)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(str(tmp_path / "log.sock"))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        sinks = [make_sink(_sink(name="u", address=f"unix://{tmp_path / 'log.sock'}", format="rfc5424")),
                 make_sink(_sink(name="d", address=f"udp://127.0.0.1:{udp.getsockname()[1]}",
                                 delivery="best-effort"))]
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

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        if not self.up:
            raise OSError("receiver down")
        self.got += [e["seq"] for e in events]
        return SendResult(len(events))


def test_failures_back_off_and_nothing_is_skipped(tmp_path: Path) -> None:
    """A failing sink is retried later (exponential backoff), the cursor survives a restart, no seq is missed;
    failures and retries are counted per sink."""
    trail = _trail(tmp_path, 12)
    now = [1000.0]
    sink = _Flaky()
    metrics = Metrics()
    shipper = Shipper(trail, [sink], tmp_path / "cursors.json", batch_size=5, clock=lambda: now[0],
                      observer=metrics)
    shipper.ship()
    first_retry = shipper.state["flaky"].next_try - now[0]
    assert 0.5 <= first_retry <= 1.5 and sink.got == []
    shipper.ship()  # still backing off: not even tried
    now[0] += 2
    shipper.ship()
    assert 1.0 <= shipper.state["flaky"].next_try - now[0] <= 3.0  # second failure: doubled
    assert shipper.failing() == {"flaky": "OSError"}  # an unknown error: its type only, never its text
    sink.up = True
    now[0] += 4
    assert shipper.ship() == {"flaky": 12} and sink.got == list(range(1, 13))
    assert shipper.lag() == {"flaky": 0}
    text = metrics.render().decode()
    assert 'onexd_audit_shipping_failures_total{sink="flaky"} 2.0' in text
    assert 'onexd_audit_shipping_retries_total{sink="flaky"} 2.0' in text
    assert 'onexd_audit_shipped_events_total{sink="flaky"} 12.0' in text
    for i in range(3):
        trail.append("later", None, "success", {"i": i})
    restarted = Shipper(trail, [sink], tmp_path / "cursors.json", clock=lambda: now[0])
    restarted.ship()
    assert sink.got == list(range(1, 16))
    archive = tmp_path / "archive.jsonl"
    Shipper(trail, [FileSink("archive", archive)], tmp_path / "c2.json").ship()
    assert [json.loads(line)["seq"] for line in archive.read_text().splitlines()] == list(range(1, 16))
    trail.close()


def test_udp_oversize_and_refused_datagrams_are_dropped_and_counted_never_wedging(tmp_path: Path) -> None:
    """Best-effort UDP: a datagram the kernel refuses (EMSGSIZE) is counted as dropped, the cursor moves on,
    and every later event still ships."""
    trail = _trail(tmp_path, 4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    metrics = Metrics()
    try:
        sink = make_sink(_sink(address=f"udp://127.0.0.1:{udp.getsockname()[1]}", delivery="best-effort",
                               maxMessageBytes=65_000))
        real_format = sink.format  # type: ignore[attr-defined]
        # An event larger than any datagram (as with a sink configured before the cap existed).
        sink.format = SyslogFormat(real_format.hostname, max_bytes=200_000)  # type: ignore[attr-defined]
        trail.append("policy.reload", None, "success", {"body": "x" * 76_000})
        trail.append("after", None, "success", {})
        shipper = Shipper(trail, [sink], tmp_path / "c.json", observer=metrics)
        assert shipper.ship() == {"s": 5}
        assert shipper.lag() == {"s": 0} and shipper.failing() == {}
        assert 'onexd_audit_events_dropped_total{sink="s"} 1.0' in metrics.render().decode()
        udp.settimeout(2)
        got = [int(re.search(rb'seq="(\d+)"', udp.recv(70_000)).group(1)) for _ in range(5)]  # type: ignore[union-attr]
        assert got == [1, 2, 3, 4, 6]
    finally:
        udp.close()
        trail.close()


class _Gated:
    """A sink that records what it gets; with `stuck`, every batch waits for `release` (a receiver that hangs)."""

    def __init__(self, name: str, stuck: bool = False) -> None:
        self.name, self.stuck = name, stuck
        self.release = threading.Event()
        self.got: list[int] = []
        self._changed = threading.Condition()

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        if self.stuck:
            self.release.wait(30)
        with self._changed:
            self.got += [e["seq"] for e in events]
            self._changed.notify_all()
        return SendResult(len(events))

    def wait_for(self, count: int, timeout_s: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.got) >= count, timeout_s)


class _Shipped:
    """An observer that lets a test wait until a number of events have been shipped (cursor already moved)."""

    def __init__(self) -> None:
        self.events = 0
        self._changed = threading.Condition()

    def shipped_events(self, sink: str, events: int) -> None:
        with self._changed:
            self.events += events
            self._changed.notify_all()

    def sink_failed(self, sink: str) -> None: ...
    def sink_retried(self, sink: str) -> None: ...
    def sink_dropped(self, sink: str, events: int) -> None: ...

    def wait_for(self, events: int, timeout_s: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.events >= events, timeout_s)


def test_a_slow_sink_does_not_delay_another(tmp_path: Path) -> None:
    """Workers run per sink: while one sink hangs on its first batch, the other ships each new event at once
    (woken, long before its 60 s tick)."""
    trail = _trail(tmp_path, 1)
    slow, fast = _Gated("slow", stuck=True), _Gated("fast")
    shipper = Shipper(trail, [slow, fast], tmp_path / "c.json")
    shipper.start(interval_s=60)
    try:
        assert fast.wait_for(1) and fast.got == [1]
        trail.append("next", None, "success", {})
        shipper.wake()
        assert fast.wait_for(2) and fast.got == [1, 2]
        assert slow.got == []  # still held on its first batch
    finally:
        slow.release.set()
        shipper.flush(10)
        shipper.stop()
        trail.close()
    assert set(slow.got) == {1, 2}


def test_worker_wakes_on_new_events_so_lag_returns_to_zero(tmp_path: Path) -> None:
    """A healthy sink reads lag 0 as soon as an event written after a wake() is shipped, long before its next
    tick (60 s)."""
    trail = _trail(tmp_path, 3)
    sink = _Flaky()
    sink.up = True
    shipped = _Shipped()
    shipper = Shipper(trail, [sink], tmp_path / "c.json", observer=shipped)
    shipper.start(interval_s=60)
    try:
        assert shipped.wait_for(3)
        for n in range(4, 7):
            trail.append("later", None, "success", {})
            shipper.wake()
            assert shipped.wait_for(n)
            assert shipper.lag() == {"flaky": 0}
    finally:
        shipper.stop()
        trail.close()
    assert sink.got == list(range(1, 7))


def test_worker_survives_a_sink_bug(tmp_path: Path) -> None:
    """An unexpected exception in a sink is a failed batch (backoff), not a dead worker."""

    class Buggy:
        name = "buggy"
        calls = 0

        def send(self, events: list[dict[str, Any]]) -> SendResult:
            Buggy.calls += 1
            raise KeyError("bug")

    trail = _trail(tmp_path, 1)
    shipper = Shipper(trail, [Buggy()], tmp_path / "c.json")
    shipper.ship()
    assert shipper.failing() == {"buggy": "KeyError"} and shipper.lag() == {"buggy": 1}
    trail.close()


def test_endpoint_parsing_keeps_ipv6_literals_bare() -> None:
    """tcp://[::1]:p connects to ::1 (the bracket syntax is the config's; sockets get the bare address)."""
    endpoint = parse_syslog_address("tcp://[::1]:6514")
    assert (endpoint.host, endpoint.port, endpoint.netloc) == ("::1", 6514, "[::1]:6514")


def test_tcp_sink_to_an_ipv6_listener(tmp_path: Path) -> None:
    """A tcp://[::1]:port sink reaches a listener on ::1 (when the host has IPv6 loopback)."""
    try:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    server.listen(1)
    got = bytearray()

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                got.extend(chunk)

    thread = threading.Thread(target=accept)
    thread.start()
    trail = _trail(tmp_path, 2)
    try:
        sink = make_sink(_sink(address=f"tcp://[::1]:{server.getsockname()[1]}"))
        assert Shipper(trail, [sink], tmp_path / "c.json").ship() == {"s": 2}
        thread.join(5)
        assert re.match(rb"^\d+ <1\d\d>1 ", bytes(got)) and bytes(got).count(b'seq="') == 2
    finally:
        server.close()
        trail.close()


def test_webhook_authorization_from_a_systemd_credential(tmp_path: Path) -> None:
    """authorization.credential reads $CREDENTIALS_DIRECTORY/NAME at each send; without systemd's directory the
    sink is refused at start with a message naming LoadCredential."""
    from onexd.errors import ConfigError

    config = AuditSink.model_validate({"name": "w", "type": "webhook", "url": "http://127.0.0.1:9/x",
                                       "authorization": {"credential": "siem-token"}})
    (tmp_path / "siem-token").write_text("Bearer from-credential\n")
    sink = make_sink(config, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    headers = sink.headers([{"seq": 3}, {"seq": 9}])  # type: ignore[attr-defined]
    assert headers["Authorization"] == "Bearer from-credential"
    assert headers["Idempotency-Key"] == "onexd-w-3-9" and headers["X-Onexd-Seq-Range"] == "3-9"
    assert "from-credential" not in repr(sink)
    with pytest.raises(ConfigError, match="LoadCredential"):
        make_sink(config, environ={})
