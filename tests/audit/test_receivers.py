"""Shipping to real receivers on loopback, each started by the test with a configuration of its own: Debian's
rsyslog and syslog-ng (TCP with both framings, TLS with a CA the test makes, UDP best-effort, oversize events),
and an HTTP server for the webhook (redirects, slowness, authorization, TLS)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from onexd.audit.events import NewEvent
from onexd.audit.shipper import Shipper
from onexd.audit.sinks import make_sink
from onexd.audit.trail import AuditLog
from onexd.config import AuditSink
from onexd.metrics import Metrics
from tests.audit.receivers import (
    CaFiles,
    DebianWebhook,
    Journald,
    Rsyslog,
    SyslogNg,
    WebhookReceiver,
    free_port,
    make_ca,
)

WORKLOAD = 2000


def _trail(tmp_path: Path, n: int) -> AuditLog:
    trail = AuditLog(tmp_path / "audit")
    types = ("job.finished", "authz.decision", "key.secret-store-data-key-rotated")
    trail.append_many([NewEvent(types[i % 3], "UnixUser:alice", "success" if i % 5 else "denied",
                                {"i": i, "note": 'quote " bracket ] backslash \\'}) for i in range(n)])
    return trail


def _sink(**fields: Any) -> AuditSink:
    return AuditSink.model_validate({"name": "s", "type": "syslog", **fields})


def _assert_parsed(receiver: Rsyslog | SyslogNg, n: int) -> None:
    """Every seq 1..n arrived, each parsed as RFC 5424 with its structured data and the event as its message."""
    seen: set[int] = set()
    for record in receiver.records():
        assert "raw" not in record, record
        event = json.loads(record["msg"])
        assert record["parsed"] == receiver.parsed_as(event) and len(record["msgid"]) <= 32, record
        assert f'seq="{event["seq"]}"' in record["sd"] and f'hash="{event["hash"]}"' in record["sd"], record
        assert f'type="{event["type"]}"' in record["sd"], record
        seen.add(event["seq"])
    assert seen == set(range(1, n + 1)), sorted(set(range(1, n + 1)) - seen)[:10]


def _ship_workload_over_tcp(tmp_path: Path, receiver: Rsyslog | SyslogNg, port: int, framing: str) -> None:
    """Ship WORKLOAD events to the receiver's TCP port in one round and check every one arrived parsed."""
    trail = _trail(tmp_path, WORKLOAD)
    shipper = Shipper(trail, [make_sink(_sink(address=f"tcp://127.0.0.1:{port}", framing=framing))],
                      tmp_path / "c.json")
    assert shipper.ship() == {"s": WORKLOAD}
    receiver.wait_for(WORKLOAD)
    _assert_parsed(receiver, WORKLOAD)
    trail.close()


@pytest.mark.integration
@pytest.mark.parametrize("framing", ["octet-counting", "lf"])
def test_rsyslog_receives_every_event_parsed(tmp_path: Path, framing: str) -> None:
    """A few thousand events over TCP reach rsyslog, each once or more, parsed as RFC 5424, no seq missing."""
    port = free_port()
    with Rsyslog(tmp_path / "rsyslog", tcp_port=port) as receiver:
        _ship_workload_over_tcp(tmp_path, receiver, port, framing)


@pytest.mark.integration
@pytest.mark.parametrize("framing", ["octet-counting", "lf"])
def test_syslog_ng_receives_every_event_parsed(tmp_path: Path, framing: str) -> None:
    """syslog-ng's syslog() (octet counting) and network() (LF) sources parse every event, no seq missing."""
    octet, lf = free_port(), free_port()
    with SyslogNg(tmp_path / "syslog-ng", octet_port=octet, lf_port=lf) as receiver:
        _ship_workload_over_tcp(tmp_path, receiver, octet if framing == "octet-counting" else lf, framing)


@pytest.mark.integration
def test_local_socket_records_are_parsed_by_rsyslog_and_syslog_ng(tmp_path: Path) -> None:
    """unix:// (format local) is parsed by rsyslog's imuxsock and syslog-ng's unix-dgram() as program `onexd`
    with the event's JSON as the message: every seq arrives."""
    trail = _trail(tmp_path, 300)
    rs_sock, ng_sock = tmp_path / "rsyslog" / "log.sock", tmp_path / "syslog-ng" / "log.sock"
    with Rsyslog(tmp_path / "rsyslog", unix_socket=rs_sock) as rsyslog, \
            SyslogNg(tmp_path / "syslog-ng", octet_port=0, lf_port=0, unix_socket=ng_sock) as syslog_ng:
        sinks = [make_sink(_sink(name="rs", address=f"unix://{rs_sock}")),
                 make_sink(_sink(name="ng", address=f"unix://{ng_sock}"))]
        assert Shipper(trail, sinks, tmp_path / "c.json").ship() == {"rs": 300, "ng": 300}
        for receiver in (rsyslog, syslog_ng):
            deadline = time.monotonic() + 20
            while len(receiver.records()) < 300 and time.monotonic() < deadline:
                time.sleep(0.1)
            records = receiver.records()
            assert all(r.get("parsed") == "onexd" for r in records), records[:3]
            assert sorted(json.loads(r["msg"])["seq"] for r in records) == list(range(1, 301))
    trail.close()


@pytest.mark.integration
def test_journald_gets_every_event_natively_and_over_its_syslog_socket(tmp_path: Path) -> None:
    """journald (private instance): format journal on its native socket stores each event with ONEXD_SEQ,
    ONEXD_TYPE, ONEXD_HASH and PRIORITY fields; format local on its /dev/log socket stores identifier and pid;
    both keep the event's JSON as MESSAGE, every seq present."""
    trail = _trail(tmp_path, 300)
    with Journald(tmp_path / "journald") as journald:
        sinks = [make_sink(_sink(name="native", address=f"unix://{journald.native_socket}", format="journal")),
                 make_sink(_sink(name="devlog", address=f"unix://{journald.syslog_socket}"))]
        assert Shipper(trail, sinks, tmp_path / "c.json").ship() == {"native": 300, "devlog": 300}
        deadline = time.monotonic() + 20
        while len(entries := journald.entries()) < 600 and time.monotonic() < deadline:
            time.sleep(0.2)
    native = [e for e in entries if e.get("_TRANSPORT") == "journal"]
    devlog = [e for e in entries if e.get("_TRANSPORT") == "syslog"]
    for group in (native, devlog):
        assert sorted(json.loads(e["MESSAGE"])["seq"] for e in group) == list(range(1, 301))
    for entry in native:
        event = json.loads(entry["MESSAGE"])
        assert entry["ONEXD_SEQ"] == str(event["seq"]) and entry["ONEXD_HASH"] == event["hash"]
        assert entry["ONEXD_TYPE"] == event["type"] and entry["SYSLOG_FACILITY"] == "13"
        assert entry["PRIORITY"] == ("6" if event["outcome"] == "success" else "4")
    assert all(e["SYSLOG_PID"].isdigit() and e["SYSLOG_FACILITY"] == "13" for e in devlog)
    trail.close()


def _tls_sink(port: int, ca: CaFiles, host: str = "localhost") -> AuditSink:
    return _sink(address=f"tls://{host}:{port}", tls={"caFile": str(ca.ca_file)})


@pytest.mark.integration
def test_tls_to_rsyslog_and_syslog_ng_with_a_verified_ca(tmp_path: Path) -> None:
    """RFC 5425: both receivers get every event over TLS verified against the test's CA."""
    ca = make_ca(tmp_path / "pki", "good")
    trail = _trail(tmp_path, 500)
    port, octet, lf = free_port(), free_port(), free_port()
    with Rsyslog(tmp_path / "rsyslog", tcp_port=port, tls=ca) as rsyslog, \
            SyslogNg(tmp_path / "syslog-ng", octet_port=octet, lf_port=lf, tls=ca) as syslog_ng:
        sinks = [make_sink(_tls_sink(port, ca).model_copy(update={"name": "r"})),
                 make_sink(_tls_sink(octet, ca).model_copy(update={"name": "n"}))]
        shipper = Shipper(trail, sinks, tmp_path / "c.json")
        assert shipper.ship() == {"r": 500, "n": 500}, shipper.failing()
        for receiver in (rsyslog, syslog_ng):
            receiver.wait_for(500)
            _assert_parsed(receiver, 500)
    trail.close()


@pytest.mark.integration
def test_tls_with_a_wrong_ca_or_to_a_plain_listener_delivers_nothing(tmp_path: Path) -> None:
    """A receiver whose certificate does not chain to the sink's CA or does not name the expected host, or one
    that does not speak TLS, gets no event; the batch fails, is counted, and stays to be retried."""
    good, other = make_ca(tmp_path / "pki", "good"), make_ca(tmp_path / "pki", "other")
    trail = _trail(tmp_path, 20)
    tls_port, plain_port = free_port(), free_port()
    metrics = Metrics()
    with Rsyslog(tmp_path / "tls", tcp_port=tls_port, tls=good) as tls_receiver, \
            Rsyslog(tmp_path / "plain", tcp_port=plain_port) as plain_receiver:
        wrong_name = _sink(name="wrong-name", address=f"tls://127.0.0.1:{tls_port}",
                           tls={"caFile": str(good.ca_file), "serverName": "not-the-receiver.example"})
        sinks = [make_sink(_tls_sink(tls_port, other).model_copy(update={"name": "wrong-ca"})),
                 make_sink(wrong_name),
                 make_sink(_tls_sink(plain_port, good).model_copy(update={"name": "plain", "timeoutSeconds": 2}))]
        shipper = Shipper(trail, sinks, tmp_path / "c.json", observer=metrics)
        assert shipper.ship() == {"wrong-ca": 0, "wrong-name": 0, "plain": 0}
        assert "TLS verification failed" in shipper.failing()["wrong-ca"]
        assert "Hostname mismatch" in shipper.failing()["wrong-name"], shipper.failing()
        assert shipper.lag() == {"wrong-ca": 20, "wrong-name": 20, "plain": 20}
        time.sleep(1)
        assert tls_receiver.seqs() == [] and plain_receiver.seqs() == []
    text = metrics.render().decode()
    assert 'onexd_audit_shipping_failures_total{sink="wrong-ca"} 1.0' in text
    assert 'onexd_audit_shipping_failures_total{sink="plain"} 1.0' in text
    trail.close()


@pytest.mark.integration
def test_tls_client_certificate_for_a_receiver_that_requires_one(tmp_path: Path) -> None:
    """rsyslog requiring a client certificate (x509/certvalid) gets every event from a sink with certFile and
    keyFile, and nothing from one without."""
    ca = make_ca(tmp_path / "pki", "good")
    trail = _trail(tmp_path, 200)
    port = free_port()
    with Rsyslog(tmp_path / "rsyslog", tcp_port=port, tls=ca, require_client_cert=True) as receiver:
        with_cert = _sink(name="mtls", address=f"tls://localhost:{port}", timeoutSeconds=3,
                          tls={"caFile": str(ca.ca_file), "certFile": str(ca.client_cert_file),
                               "keyFile": str(ca.client_key_file)})
        without = _tls_sink(port, ca).model_copy(update={"name": "anonymous", "timeoutSeconds": 3})
        shipper = Shipper(trail, [make_sink(without), make_sink(with_cert)], tmp_path / "c.json")
        assert shipper.ship() == {"anonymous": 0, "mtls": 200}, shipper.failing()
        assert shipper.lag() == {"anonymous": 200, "mtls": 0}
        receiver.wait_for(200)
        _assert_parsed(receiver, 200)
    trail.close()


@pytest.mark.integration
def test_udp_best_effort_to_rsyslog_counts_sends(tmp_path: Path) -> None:
    """UDP ships as best-effort: an oversize event arrives as its marker, a burst of a few thousand is counted
    as sent (what arrives is parsed RFC 5424; loss is what best-effort means), and the cursor reaches the end."""
    trail = AuditLog(tmp_path / "audit")
    trail.append("policy.reload", "UnixUser:root", "success", {"body": "x" * 76_000})
    port = free_port()
    metrics = Metrics()
    with Rsyslog(tmp_path / "rsyslog", udp_port=port) as receiver:
        sink = make_sink(_sink(address=f"udp://127.0.0.1:{port}", delivery="best-effort", batchSize=100))
        shipper = Shipper(trail, [sink], tmp_path / "c.json", observer=metrics)
        assert shipper.ship() == {"s": 1}
        assert receiver.wait_for(1, timeout_s=10) == [1]
        marker = receiver.records()[0]
        assert 'truncated="true"' in marker["sd"] and json.loads(marker["msg"])["truncated"] is True
        trail.append_many([NewEvent("burst", None, "success", {"i": i}) for i in range(WORKLOAD)])
        assert shipper.ship() == {"s": WORKLOAD} and shipper.lag() == {"s": 0}
        seqs = receiver.wait_for(WORKLOAD + 1, timeout_s=5)
        assert len(set(seqs)) > 1 and set(seqs) <= set(range(1, WORKLOAD + 2))
        assert all(r["parsed"] == "1" for r in receiver.records())
    assert f'onexd_audit_shipped_events_total{{sink="s"}} {float(WORKLOAD + 1)}' in metrics.render().decode()
    trail.close()


@pytest.mark.integration
def test_an_oversize_event_reaches_rsyslog_default_limit_as_one_record(tmp_path: Path) -> None:
    """Under rsyslog's default 8 KiB limit a 20 KB event arrives as one record (its marker), not split."""
    trail = AuditLog(tmp_path / "audit")
    trail.append("small", None, "success", {})
    trail.append("policy.reload", "UnixUser:root", "success", {"body": "y" * 20_000})
    trail.append("small", None, "success", {})
    port = free_port()
    with Rsyslog(tmp_path / "rsyslog", tcp_port=port, max_message_size="8k") as receiver:
        shipper = Shipper(trail, [make_sink(_sink(address=f"tcp://127.0.0.1:{port}"))], tmp_path / "c.json")
        shipper.ship()
        receiver.wait_for(3)
        records = receiver.records()
        assert [json.loads(r["msg"])["seq"] for r in records] == [1, 2, 3], records
        marker = json.loads(records[1]["msg"])
        assert marker["truncated"] is True and marker["hash"] == trail.read(1, 1)[0]["hash"]
    trail.close()


# --- webhook -------------------------------------------------------------------------------------------


def _webhook(url: str, **fields: Any) -> AuditSink:
    return AuditSink.model_validate({"name": "w", "type": "webhook", "url": url, **fields})


def test_finding_10_a_redirecting_webhook_is_a_counted_failure_then_gets_every_event(tmp_path: Path) -> None:
    """A 302 is not followed (no GET, nothing counted delivered); once it stops redirecting, every event
    arrives, with an idempotency key naming the batch's seq range."""
    trail = _trail(tmp_path, 1200)
    metrics = Metrics()
    now = [0.0]
    with WebhookReceiver(mode="redirect") as receiver:
        shipper = Shipper(trail, [make_sink(_webhook(receiver.url))], tmp_path / "c.json", batch_size=500,
                          clock=lambda: now[0], observer=metrics)
        assert shipper.ship() == {"w": 0}
        assert shipper.lag() == {"w": 1200} and "302" in shipper.failing()["w"]
        assert receiver.received == [] and receiver.gets == []
        receiver.mode = "ok"
        now[0] += 10
        assert shipper.ship() == {"w": 1200}
    assert receiver.seqs() == list(range(1, 1201))
    assert [r.headers["Idempotency-Key"] for r in receiver.received] == [
        "onexd-w-1-500", "onexd-w-501-1000", "onexd-w-1001-1200"]
    text = metrics.render().decode()
    assert 'onexd_audit_shipping_failures_total{sink="w"} 1.0' in text
    assert 'onexd_audit_shipping_retries_total{sink="w"} 1.0' in text
    trail.close()


def test_the_authorization_header_arrives_and_is_never_logged(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """The header value is read from its file, sent, and appears in no log record (also when failing)."""
    token = "Bearer s3cr3t-token-value-1234"
    auth = tmp_path / "webhook-auth"
    auth.write_text(token + "\n")
    trail = _trail(tmp_path, 10)
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver(mode="fail") as receiver:
        sink = make_sink(_webhook(receiver.url, authorization={"file": str(auth)}))
        shipper = Shipper(trail, [sink], tmp_path / "c.json", clock=lambda: 0.0)
        shipper.ship()
        assert shipper.lag() == {"w": 10} and "503" in shipper.failing()["w"]
        receiver.mode = "ok"
        shipper.state["w"].next_try = 0.0
        shipper.ship()
    assert receiver.received[-1].headers["Authorization"] == token and shipper.lag() == {"w": 0}
    assert token not in caplog.text and "s3cr3t" not in repr(sink)
    assert all("s3cr3t" not in json.dumps(r.__dict__, default=str) for r in caplog.records)
    trail.close()


@pytest.mark.integration
def test_debian_webhook_gets_every_event_only_with_the_right_authorization(tmp_path: Path) -> None:
    """Debian's `webhook` (the operator guide's configuration) refuses a wrong Authorization header (401: a
    counted failure, nothing stored), then stores every event once the header is right."""
    auth = tmp_path / "auth"
    auth.write_text("Bearer wrong\n")
    trail = _trail(tmp_path, 1000)
    metrics = Metrics()
    now = [0.0]
    with DebianWebhook(tmp_path / "webhook", token="Bearer right-token") as receiver:
        sink = make_sink(_webhook(receiver.url, batchSize=100, authorization={"file": str(auth)}))
        shipper = Shipper(trail, [sink], tmp_path / "c.json", clock=lambda: now[0], observer=metrics,
                          batch_sizes={"w": 100})
        assert shipper.ship() == {"w": 0} and "401" in shipper.failing()["w"]
        assert receiver.seqs() == []
        auth.write_text("Bearer right-token\n")  # read at each send: no restart needed
        now[0] += 10
        assert shipper.ship() == {"w": 1000}
        assert receiver.seqs() == list(range(1, 1001))
    assert 'onexd_audit_shipping_failures_total{sink="w"} 1.0' in metrics.render().decode()
    trail.close()


def test_https_webhook_verifies_the_receiver(tmp_path: Path) -> None:
    """An https webhook delivers to a receiver certified by the configured CA and refuses one that is not."""
    good, other = make_ca(tmp_path / "pki", "good"), make_ca(tmp_path / "pki", "other")
    trail = _trail(tmp_path, 5)
    with WebhookReceiver(tls=good) as receiver:
        ok = make_sink(_webhook(receiver.url, tls={"caFile": str(good.ca_file)}).model_copy(update={"name": "ok"}))
        bad = make_sink(_webhook(receiver.url, tls={"caFile": str(other.ca_file)}).model_copy(update={"name": "bad"}))
        shipper = Shipper(trail, [ok, bad], tmp_path / "c.json")
        assert shipper.ship() == {"ok": 5, "bad": 0}
        assert "verification failed" in shipper.failing()["bad"]
    assert receiver.seqs() == [1, 2, 3, 4, 5]
    trail.close()


@pytest.mark.integration
def test_a_slow_webhook_does_not_delay_syslog(tmp_path: Path) -> None:
    """While a webhook takes 12 s per batch, rsyslog receives each new event within 3 s of its write."""
    trail = _trail(tmp_path, 10)
    port = free_port()
    with Rsyslog(tmp_path / "rsyslog", tcp_port=port) as rsyslog, WebhookReceiver(delay_s=12) as webhook:
        sinks = [make_sink(_webhook(webhook.url, timeoutSeconds=30)),
                 make_sink(_sink(address=f"tcp://127.0.0.1:{port}"))]
        shipper = Shipper(trail, sinks, tmp_path / "c.json")
        shipper.start(interval_s=1)
        try:
            assert len(set(rsyslog.wait_for(10, timeout_s=5))) == 10
            latencies = []
            for i in range(3):
                written = time.monotonic()
                seq = trail.append("later", None, "success", {"i": i})
                shipper.wake()
                assert seq in rsyslog.wait_for(seq, timeout_s=5)
                latencies.append(time.monotonic() - written)
            assert max(latencies) < 3.0, latencies
            assert webhook.received == []  # still inside its first 12 s
        finally:
            shipper.stop(timeout_s=1)
    trail.close()
