"""The daemon end to end over its socket with curl: identity, authorization, jobs, hot reload, bad input,
concurrency, crash recovery and shutdown. Jobs run on the real engine."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.daemon.conftest import ONEXD, OTHER_UIDS, Daemon

pytestmark = pytest.mark.docker

HELLO = {"node": "hello", "input": {"name": "daemon"}}
SLEEP = {"profile": "busybox-tiny", "command": ["sleep", "10"]}


def _wait_final(d: Daemon, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, record = d.curl("GET", f"/v1/jobs/{job_id}")
        assert code == 200, record
        if record["status"] not in ("queued", "running"):
            return dict(record)
        assert time.monotonic() < deadline, record
        time.sleep(0.1)


def test_every_endpoint_answers_over_curl(daemon: Daemon) -> None:
    """Root runs an example node to success with the snapshot digest; every route answers in JSON."""
    code, version = daemon.curl("GET", "/version")
    assert code == 200 and version["apiVersion"] == "onexd/v1"
    code, health = daemon.curl("GET", "/v1/health")
    assert code == 200 and health["status"] == "ok"
    code, record = daemon.curl("POST", "/v1/jobs?wait=true", HELLO)
    assert code == 200 and record["status"] == "succeeded", record
    assert json.loads(record["stdout"]) == {"greeting": "Hello, daemon!"}
    assert record["policy"]["digest"] == health["policy"]["digest"]
    job = record["id"]
    assert daemon.curl("GET", f"/v1/jobs/{job}")[1]["id"] == job
    code, page = daemon.curl("GET", "/v1/jobs?limit=5")
    assert code == 200 and page["jobs"][0]["id"] == job
    code, logs = daemon.curl("GET", f"/v1/jobs/{job}/logs?follow=true")
    lines = [json.loads(x) for x in logs.splitlines()]
    assert code == 200 and lines[0] == {"stream": "stdout", "line": '{"greeting": "Hello, daemon!"}'}
    assert lines[-1]["event"] == "end"
    assert daemon.curl("DELETE", f"/v1/jobs/{job}")[0] == 200  # already finished: nothing to cancel
    code, policy = daemon.curl("GET", "/v1/policy")
    assert code == 200 and {b["name"] for b in policy["bundles"]} == {"hello", "data-job", "testers"}
    code, reloaded = daemon.curl("POST", "/v1/policy/reload")
    assert code == 200 and reloaded["changed"] is False
    code, explained = daemon.curl("POST", "/v1/policy/explain", {"request": HELLO})
    assert code == 200 and explained["allowed"] is True
    code, spec = daemon.curl("GET", "/openapi.json")
    assert code == 200 and spec["openapi"].startswith("3.1")
    code, queued = daemon.curl("POST", "/v1/jobs", SLEEP)
    assert code == 202
    assert daemon.curl("DELETE", f"/v1/jobs/{queued['id']}")[0] in (200, 202)
    assert _wait_final(daemon, queued["id"])["status"] == "cancelled"


def test_socket_is_0660_with_the_configured_group(daemon: Daemon) -> None:
    """The socket file is mode 0660 and owned by the configured group."""
    st = daemon.socket.stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o660, 4243)


def test_unbound_uid_gets_403_with_reasons(daemon: Daemon) -> None:
    """A Unix user no RoleBinding names is denied with the reason, from SO_PEERCRED."""
    code, body = daemon.curl("POST", "/v1/jobs", HELLO, uid=4299)
    assert code == 403
    assert body["error"]["code"] == "denied" and body["error"]["correlationId"]
    assert body["error"]["reasons"][0]["code"] == "no-binding"
    assert "UnixUser:4299" in body["error"]["reasons"][0]["message"]


def test_added_binding_applies_within_2s_without_restart(daemon: Daemon) -> None:
    """A RoleBinding added with a higher bundle version lets the uid run hello within 2 s."""
    assert daemon.curl("POST", "/v1/jobs", HELLO, uid=4299)[0] == 403
    access = (daemon.policy_dir / "hello" / "access.yaml").read_text()
    binding = ("---\napiVersion: onexd/v1\nkind: RoleBinding\nmetadata: {name: uid-4299}\n"
               "spec:\n  roles: [hello-runner]\n  subjects: [{kind: UnixUser, name: '4299'}]\n")
    daemon.set_policy("hello", "access.yaml", access + binding)
    daemon.bump("hello", "1.1.0")
    changed = time.monotonic()
    while daemon.curl("POST", "/v1/jobs", HELLO, uid=4299)[0] != 202:
        assert time.monotonic() - changed < 2.0, "the new binding did not apply within 2 s"
        time.sleep(0.05)


def test_broken_change_keeps_the_previous_version_then_recovers(daemon: Daemon) -> None:
    """An invalid change: the last good version stays active, health is degraded and /v1/policy names the
    broken file; repairing it recovers."""
    before = daemon.curl("GET", "/v1/policy")[1]
    sandbox = (daemon.policy_dir / "hello" / "sandbox.yaml").read_text()
    daemon.set_policy("hello", "sandbox.yaml", sandbox.replace('user: "10001:10001"', 'user: "0:0"'))
    daemon.bump("hello", "2.0.0")
    deadline = time.monotonic() + 5
    while daemon.curl("GET", "/v1/health")[1]["status"] != "degraded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    policy = daemon.curl("GET", "/v1/policy")[1]
    assert policy["digest"] == before["digest"]
    (rejection,) = policy["rejections"]
    assert rejection["bundle"] == "hello" and rejection["files"][0].endswith("hello/sandbox.yaml")
    assert "security/root-user" in {p["code"] for p in rejection["problems"]}
    code, record = daemon.curl("POST", "/v1/jobs?wait=true", HELLO)  # the previous version still runs
    assert code == 200 and record["status"] == "succeeded"
    daemon.set_policy("hello", "sandbox.yaml", sandbox)
    deadline = time.monotonic() + 5
    while daemon.curl("GET", "/v1/health")[1]["status"] != "ok":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert daemon.curl("GET", "/v1/policy")[1]["bundles"][1]["version"] == "2.0.0"


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("invalid-json", b'{"node": ', "invalid-json"),
    ("wrong-type", b'{"node": 5}', "invalid-request"),
    ("unknown-field", b'{"node": "hello", "input": {"name": "x"}, "priority": 1}', "invalid-request"),
    ("schema-input", b'{"node": "hello", "input": {"name": ""}}', "invalid-input"),
    ("deep-json", b'{"node": "hello", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too-deep"),
    ("invalid-utf8", b'{"node": "\xff\xfe"}', "invalid-encoding"),
    ("shell-command", b'{"profile": "busybox-tiny", "command": "rm -rf /"}', "invalid-request"),
    ("both-shapes", b'{"node": "hello", "profile": "busybox-tiny", "command": ["true"]}', "invalid-request"),
]


def test_bad_requests_get_400_with_json_errors_and_never_5xx(daemon: Daemon) -> None:
    """Each malformed body is a 400 with code, message and correlation id; over 1 MiB is a 413."""
    for name, raw, expected in BAD_BODIES:
        code, body = daemon.curl("POST", "/v1/jobs", raw=raw)
        assert code == 400, (name, body)
        assert body["error"]["code"] == expected, (name, body)
        assert body["error"]["message"] and body["error"]["correlationId"]
        assert "Traceback" not in json.dumps(body)
    code, body = daemon.curl("POST", "/v1/jobs", raw=b" " * (1024 * 1024 + 1))
    assert code == 413 and body["error"]["code"] == "body-too-large"
    for method, path in (("GET", "/v1/nope"), ("PUT", "/v1/jobs"), ("GET", "/v1/jobs/does-not-exist"),
                         ("GET", "/v1/jobs?limit=abc")):
        code, body = daemon.curl(method, path)
        assert 400 <= code < 500 and "error" in body, (method, path, body)
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_fifty_concurrent_submissions_from_three_uids(daemon: Daemon) -> None:
    """All accepted jobs are recorded and finish; none is lost; never more than maxJobs run at once."""
    uids = [None, *OTHER_UIDS]
    job = {"profile": "busybox-tiny", "command": ["sh", "-c", "sleep 0.3; echo done"]}
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda i: daemon.curl("POST", "/v1/jobs", job, uid=uids[i % 3]), range(50)))
    assert {code for code, _ in results} <= {202, 429}
    accepted = [body["id"] for code, body in results if code == 202]
    assert len(accepted) == 50  # limits (30 per principal) are above 50/3: every job is accepted
    records = [_wait_final(daemon, job_id) for job_id in accepted]
    assert all(r["status"] == "succeeded" and r["stdout"] == "done\n" for r in records)
    assert {r["principal"] for r in records} == {"UnixUser:root", "UnixUser:4242", "UnixUser:4244"}
    events = sorted([(r["startedAt"], 1) for r in records] + [(r["finishedAt"], -1) for r in records],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 4
    page = daemon.curl("GET", "/v1/jobs?all=true&limit=500")[1]["jobs"]
    assert set(accepted) <= {j["id"] for j in page}


def test_other_users_jobs_are_invisible_without_read_all(daemon: Daemon) -> None:
    """uid 4242 sees its own job, not root's; root (jobs:read-all) sees both."""
    mine = daemon.curl("POST", "/v1/jobs", {"profile": "busybox-tiny", "command": ["true"]}, uid=4242)[1]["id"]
    roots = daemon.curl("POST", "/v1/jobs", {"profile": "busybox-tiny", "command": ["true"]})[1]["id"]
    assert daemon.curl("GET", f"/v1/jobs/{mine}", uid=4242)[0] == 200
    assert daemon.curl("GET", f"/v1/jobs/{roots}", uid=4242)[0] == 404
    assert daemon.curl("DELETE", f"/v1/jobs/{roots}", uid=4242)[0] == 404
    assert daemon.curl("GET", "/v1/jobs?all=true", uid=4242)[0] == 403
    assert daemon.curl("GET", f"/v1/jobs/{mine}")[0] == 200


def test_reload_storm_never_mixes_snapshots(daemon: Daemon) -> None:
    """20 policy changes a second for 10 s while jobs are submitted: each job names one digest that was
    active, and nothing answers 5xx."""
    stop = threading.Event()
    digests: set[str] = {daemon.curl("GET", "/v1/policy")[1]["digest"]}
    access = (daemon.policy_dir / "testers" / "policy.yaml").read_text()

    def storm() -> None:
        for i in range(200):
            if stop.is_set():
                return
            daemon.set_policy("testers", "policy.yaml", access.replace("name: tester\n", f"name: tester\n  "
                                                                       f"annotations: {{rev: '{i}'}}\n", 1))
            daemon.bump("testers", f"1.0.{i + 1}")
            time.sleep(0.05)

    def watch() -> None:
        while not stop.is_set():
            code, policy = daemon.curl("GET", "/v1/policy")
            assert code == 200
            digests.add(policy["digest"])
            time.sleep(0.02)

    threads = [threading.Thread(target=storm), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    submitted, codes = [], []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            code, body = daemon.curl("POST", "/v1/jobs", {"profile": "busybox-tiny", "command": ["true"]}, uid=4242)
            codes.append(code)
            if code == 202:
                submitted.append(body["id"])
    finally:
        stop.set()
        for t in threads:
            t.join()
    time.sleep(1)
    digests.add(daemon.curl("GET", "/v1/policy")[1]["digest"])
    assert all(c < 500 for c in codes) and submitted
    records = [_wait_final(daemon, job_id) for job_id in submitted]
    assert {r["policy"]["digest"] for r in records} <= digests
    assert len(digests) > 3  # the storm did change the active policy many times
    log_digests = {json.loads(line).get("digest") for line in daemon.log.read_text().splitlines()
                   if '"policy reloaded"' in line}
    assert {r["policy"]["digest"] for r in records} <= log_digests | digests


def test_kill_9_then_restart_leaves_consistent_records_and_no_containers(daemons: Callable[..., Daemon]) -> None:
    """After kill -9 with jobs running, the next start marks them error and reaps their containers."""
    d = daemons()
    d.start()
    try:
        ids = [d.curl("POST", "/v1/jobs", SLEEP)[1]["id"] for _ in range(3)]
        client = docker.APIClient(version="auto")
        deadline = time.monotonic() + 20
        while len(client.containers(filters={"label": "onexd.managed=true"})) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        d.stop(signal.SIGKILL)
        assert len(client.containers(all=True, filters={"label": "onexd.managed=true"})) == 3  # orphans now
        d.start()
        assert client.containers(all=True, filters={"label": "onexd.managed=true"}) == []
        client.close()
        for job_id in ids:
            record = d.curl("GET", f"/v1/jobs/{job_id}")[1]
            assert record["status"] == "error" and "stopped" in record["reason"]
        assert d.curl("POST", "/v1/jobs?wait=true", HELLO)[1]["status"] == "succeeded"
    finally:
        if d.proc is not None:
            d.stop()


def test_sigterm_lets_running_jobs_finish_and_removes_the_socket(daemons: Callable[..., Daemon]) -> None:
    """On SIGTERM a running job completes and is recorded; new jobs are refused; the socket goes away."""
    d = daemons()
    d.start()
    job = d.curl("POST", "/v1/jobs", {"profile": "busybox-tiny", "command": ["sh", "-c", "sleep 2; echo ok"]})[1]
    time.sleep(0.5)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    code, body = d.curl("POST", "/v1/jobs", HELLO)
    assert code in (503, 0), body  # refused while draining (or the socket is already closed)
    assert d.proc.wait(timeout=60) == 0
    d.proc = None
    assert not d.socket.exists()
    d.start()
    record = d.curl("GET", f"/v1/jobs/{job['id']}")[1]
    assert (record["status"], record["stdout"]) == ("succeeded", "ok\n")
    d.stop()


def test_second_instance_on_the_same_state_dir_is_refused(daemon: Daemon) -> None:
    """A second `onexd serve` with the same state directory exits with a clear message."""
    proc = subprocess.run([ONEXD, "serve", "--config", str(daemon.config), "--socket", str(daemon.root / "b.sock")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "another onexd is running" in proc.stderr


def test_stale_socket_file_is_replaced(daemons: Callable[..., Daemon]) -> None:
    """A socket file left by a crash (nobody listening) does not stop the next start."""
    import socket as socketlib

    d = daemons()
    d.socket.parent.mkdir(parents=True, exist_ok=True)
    stale = socketlib.socket(socketlib.AF_UNIX)
    stale.bind(str(d.socket))
    stale.close()
    d.start()
    assert d.curl("GET", "/version")[0] == 200
    d.stop()


@pytest.mark.parametrize(("config", "field"), [
    ("socket: {mode: '0777x'}\n", "socket.mode"),
    ("concurrency: {maxJobs: 0}\n", "concurrency.maxJobs"),
    ("bogus: 1\n", "bogus"),
    ("runtime: {backend: podman}\n", "runtime.backend"),
])
def test_bad_config_stops_the_daemon_naming_the_field(tmp_path: Path, config: str, field: str) -> None:
    """A bad onexd.yaml exits non-zero at start with a message naming the field."""
    path = tmp_path / "onexd.yaml"
    path.write_text("apiVersion: onexd/v1\nkind: DaemonConfig\n" + config)
    proc = subprocess.run([ONEXD, "serve", "--config", str(path), "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and field in proc.stderr, proc.stderr


def test_logs_follow_streams_lines_while_the_job_runs(daemon: Daemon) -> None:
    """`logs?follow=true` delivers each line as the job prints it, then an end event."""
    import subprocess as sp

    script = "for i in 1 2 3; do echo line-$i; sleep 1; done"
    job = daemon.curl("POST", "/v1/jobs", {"profile": "busybox-tiny", "command": ["sh", "-c", script]})[1]
    proc = sp.Popen(["curl", "-sN", "--unix-socket", str(daemon.socket),
                     f"http://onexd/v1/jobs/{job['id']}/logs?follow=true"], stdout=sp.PIPE, text=True)
    assert proc.stdout is not None
    arrivals = []
    with proc.stdout:
        for raw in proc.stdout:
            arrivals.append((time.monotonic(), json.loads(raw)))
    proc.wait(timeout=30)
    lines = [entry["line"] for _, entry in arrivals if "line" in entry]
    assert lines == ["line-1", "line-2", "line-3"]
    assert arrivals[-1][1]["event"] == "end" and arrivals[-1][1]["status"] == "succeeded"
    first, last = arrivals[0][0], arrivals[2][0]
    assert last - first > 1.5  # the first line came while the job was still running
