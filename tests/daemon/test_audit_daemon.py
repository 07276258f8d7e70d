"""The audit trail of a running daemon: verification, shipping through outages and restarts, a full disk in
enforced mode, metrics."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.daemon.conftest import Daemon

pytestmark = pytest.mark.integration

ONEXD = str(Path(sys.executable).parent / "onexd")


class _Receiver(BaseHTTPRequestHandler):
    events: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.events.extend(body["events"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Webhook:
    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = type("Receiver", (_Receiver,), {"events": []})
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def seqs(self) -> set[int]:
        return {int(e["seq"]) for e in self.handler.events}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(_free_port())
    yield hook
    hook.stop()


def _last_seq(d: Daemon) -> int:
    return int(d.curl("GET", "/v1/audit?since=0&limit=1")[1]["lastSeq"])


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_trail_verifies_and_tampering_is_caught_by_cli_and_api(daemons: Callable[..., Daemon]) -> None:
    """After real work the trail verifies (CLI exit 0, API ok); a modified record makes both report it."""
    d = daemons(backend="fake", extra={"audit": {"checkpoint": {"everyEvents": 5, "everySeconds": 1}}})
    d.start()
    for _ in range(5):
        d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "audit"}})
    d.curl("POST", "/v1/jobs", {"node": "hello", "input": {"name": ""}})  # a 400
    d.curl("POST", "/v1/jobs", {"node": "hello", "input": {}}, uid=4299)  # a 403
    code, verified = d.curl("GET", "/v1/audit/verify")
    assert code == 200 and verified["ok"] and verified["checkpoints"] >= 1
    types = {e["type"] for e in d.curl("GET", "/v1/audit?since=0&limit=10000")[1]["events"]}
    assert {"daemon.start", "policy.activated", "authz.decision", "job.submitted", "job.started", "job.finished",
            "key.key-created", "audit.checkpoint"} <= types
    d.stop()
    cli = subprocess.run([ONEXD, "audit", "verify", "--state-dir", str(d.state_dir)], capture_output=True,
                         text=True, check=False)
    assert cli.returncode == 0 and "intact" in cli.stdout
    segment = sorted((d.state_dir / "audit").glob("audit-*.jsonl"))[0]
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b'"outcome":"success"', b'"outcome":"failure"', 1)
    segment.write_bytes(b"".join(lines))
    cli = subprocess.run([ONEXD, "audit", "verify", "--state-dir", str(d.state_dir), "-o", "json"],
                         capture_output=True, text=True, check=False)
    assert cli.returncode == 3 and json.loads(cli.stdout)["firstBadSeq"] == 5


def test_sinks_get_every_event_across_an_outage_and_a_restart(daemons: Callable[..., Daemon], tmp_path: Path,
                                                               webhook: Webhook) -> None:
    """A file sink and a webhook (down at first, then up) each end with every seq, de-duplicated by seq."""
    archive = tmp_path / "archive.jsonl"
    d = daemons(backend="fake", extra={"audit": {
        "shipEverySeconds": 1, "checkpoint": {"everyEvents": 50, "everySeconds": 2},
        "sinks": [{"name": "archive", "type": "file", "path": str(archive)},
                  {"name": "siem", "type": "webhook", "url": f"http://127.0.0.1:{webhook.port}/onexd",
                   "batchSize": 7}]}})
    d.start()
    for _ in range(10):
        d.curl("GET", "/v1/policy")
    time.sleep(1.5)  # at least one shipping round against the dead webhook
    webhook.start()
    target = _last_seq(d)  # reading it is audited too: wait for a fixed target, not a moving one
    _wait_for(lambda: webhook.seqs() >= set(range(1, target + 1)), 30, "webhook did not catch up")
    d.stop()  # SIGTERM: a final checkpoint and a last shipping round
    webhook.stop()
    d.start()
    for _ in range(10):
        d.curl("GET", "/v1/jobs")
    webhook.start()
    target = _last_seq(d)
    _wait_for(lambda: webhook.seqs() >= set(range(1, target + 1)), 30, "webhook missed events")
    d.stop()
    last = max(webhook.seqs())
    assert webhook.seqs() == set(range(1, last + 1))
    archived = [json.loads(line)["seq"] for line in archive.read_text().splitlines()]
    assert set(archived) == set(range(1, max(archived) + 1)) and max(archived) >= last - 5


def test_full_disk_in_enforced_mode_refuses_jobs_and_recovers(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """State on a tiny tmpfs that fills up: requests are refused with a clear error, nothing is silently
    lost, and once space returns jobs run again and the trail verifies."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)], check=True)
    d = daemons(backend="fake", extra={"stateDir": str(mount / "state")})
    try:
        d.state_dir = mount / "state"
        d.start()
        assert d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "x"}})[0] == 200
        filler = mount / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
        code, body = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "y"}})
        # The trail or the job database hits the wall first (tmpfs pages have slack): either way, refused.
        assert code == 503 and body["error"]["code"] in ("audit-unavailable", "state-unavailable"), body
        assert "cannot be written" in body["error"]["message"]
        filler.unlink()
        code, record = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "z"}})
        assert code == 200 and record["status"] == "succeeded"
        assert d.curl("GET", "/v1/audit/verify")[1]["ok"]
        d.stop()
    finally:
        if d.proc is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_metrics_expose_the_security_metrics(daemons: Callable[..., Daemon]) -> None:
    """/metrics (monitoring:read) has the security counters, job, reload, audit, shipping and key-age series."""
    d = daemons(backend="fake")
    d.start()
    d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "m"}})
    d.curl("POST", "/v1/jobs", {"node": "hello", "input": {}}, uid=4299)
    out = subprocess.run(["curl", "-s", "--unix-socket", str(d.socket), "http://onexd/metrics"],
                         capture_output=True, text=True, check=True).stdout
    for series in ('onexd_authentication_attempts_total{method="peer",result="success"}',
                   'onexd_authorization_checks_total{action="execute",resource_type="nodes",result="denied"}',
                   'onexd_jobs_total{status="succeeded"}', "onexd_job_duration_seconds_bucket",
                   'onexd_policy_reloads_total{result="ok"}', "onexd_audit_events_total",
                   "onexd_signing_key_age_seconds", "onexd_node_execution_security_events_total"):
        assert series in out, series
    assert d.curl("GET", "/metrics", uid=4299)[0] == 403
