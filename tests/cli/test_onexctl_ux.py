"""onexctl as operators of kubectl and docker expect it (issue 13): global options anywhere, credentials, input from
files and stdin, timeouts, short ids and prefixes, readable tables, explain text, and an audit follower that does
not feed the trail. Against a real daemon on the fake runtime."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from onexd.jobs.records import new_job_id
from onexd.jobs.store import AmbiguousJobId, JobStore
from tests.conftest import ROOT
from tests.daemon.conftest import Daemon

ONEXCTL = str(Path(sys.executable).parent / "onexctl")
ONEXD = str(Path(sys.executable).parent / "onexd")


def _common(ids: list[str]) -> str:
    """The longest prefix all the ids share."""
    return ids[0][:next((i for i, chars in enumerate(zip(*ids, strict=False)) if len(set(chars)) > 1),
                        min(map(len, ids)))] if ids else ""


def _ctl(*args: str, uid: int | None = None, stdin: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [ONEXCTL, *args]
    if uid is not None:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--groups=4243", *cmd]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEXD_")}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, cwd=ROOT, input=stdin,
                          env={**clean, **(env or {})})


@pytest.fixture
def fake(daemons: Callable[..., Daemon]) -> Daemon:
    d = daemons(backend="fake", with_testers=True)
    d.start()
    return d


@pytest.mark.integration
def test_global_options_before_or_after_the_subcommand(fake: Daemon) -> None:
    """-o and --socket work before the subcommand, after it, and after a nested action; the last one wins."""
    sock = str(fake.socket)
    before = _ctl("-o", "json", "--socket", sock, "health")
    after = _ctl("health", "-o", "json", "--socket", sock)
    nested = _ctl("policy", "status", "--socket", sock, "-o", "yaml")
    assert json.loads(before.stdout)["status"] == json.loads(after.stdout)["status"] == "ok"
    assert yaml.safe_load(nested.stdout)["bundles"]
    assert json.loads(_ctl("-o", "yaml", "--socket", sock, "health", "-o", "json").stdout)["status"] == "ok"
    env_socket = _ctl("health", "-o", "json", env={"ONEXD_SOCKET": sock})
    assert env_socket.returncode == 0, env_socket.stderr


@pytest.mark.integration
def test_every_command_honours_output(fake: Daemon) -> None:
    """job logs -o yaml/json and keys jwks -o table/yaml render in the asked format, not always JSON."""
    sock = str(fake.socket)
    record = json.loads(_ctl("job", "run", "hello", "--input", '{"name": "o"}', "--wait", "-o", "json",
                             "--socket", sock).stdout)
    logs = yaml.safe_load(_ctl("job", "logs", record["id"], "-o", "yaml", "--socket", sock).stdout)
    assert logs[0] == {"stream": "stdout", "line": '{"name":"o"}'} and logs[-1]["event"] == "end"
    lines = _ctl("job", "logs", record["id"], "-o", "json", "--socket", sock).stdout.splitlines()
    assert [json.loads(line) for line in lines][-1]["status"] == "succeeded"
    jwks_table = _ctl("keys", "jwks", "--socket", sock)
    assert jwks_table.returncode == 0 and "kid" in jwks_table.stdout and not jwks_table.stdout.startswith("{")
    assert yaml.safe_load(_ctl("keys", "jwks", "-o", "yaml", "--socket", sock).stdout)["keys"]


@pytest.mark.integration
def test_token_and_api_key_authenticate(fake: Daemon) -> None:
    """--token/ONEXD_TOKEN and --api-key/ONEXD_API_KEY act as their subject from an unbound uid; both is usage."""
    sock = str(fake.socket)
    token = _ctl("token", "issue", "--subject", "ci-bot", "--ttl", "10m", "--socket", sock).stdout.strip()
    key = _ctl("apikey", "create", "deploy-bot", "--socket", sock).stdout.strip()
    for args, env, who in ((["--token", token], {}, "Token:ci-bot"), ([], {"ONEXD_TOKEN": token}, "Token:ci-bot"),
                           (["--api-key", key], {}, "ApiKey:deploy-bot"),
                           ([], {"ONEXD_API_KEY": key}, "ApiKey:deploy-bot")):
        run = _ctl("job", "run", "hello", "--input", '{"name": "bot"}', "--wait", "-o", "json", "--socket", sock,
                   *args, uid=4299, env=env)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["principal"] == who
    assert _ctl("health", "--token", token, "--api-key", key, "--socket", sock).returncode == 2
    bad = _ctl("health", "--token", "not-a-token", "--socket", sock)
    assert bad.returncode == 3 and "token rejected" in bad.stderr


@pytest.mark.integration
def test_job_input_from_a_file_and_stdin(fake: Daemon, tmp_path: Path) -> None:
    """--input-file F, --input-file - and --input - read the job input; giving both is a usage error."""
    sock = str(fake.socket)
    path = tmp_path / "input.json"
    path.write_text('{"name": "from-file"}')
    from_file = _ctl("job", "run", "hello", "--input-file", str(path), "--wait", "--socket", sock)
    assert from_file.returncode == 0 and from_file.stdout.count('{"name":"from-file"}') == 1  # printed once
    for flag in ("--input", "--input-file"):
        piped = _ctl("job", "run", "hello", flag, "-", "--wait", "--socket", sock, stdin='{"name": "piped"}')
        assert piped.returncode == 0 and '{"name":"piped"}' in piped.stdout, piped.stderr
    both = _ctl("job", "run", "hello", "--input", "{}", "--input-file", str(path), "--socket", sock)
    assert both.returncode == 2 and "not both" in both.stderr
    missing = _ctl("job", "run", "hello", "--input-file", str(tmp_path / "nope.json"), "--socket", sock)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """A Unix socket that accepts connections and never answers."""
    directory = tempfile.mkdtemp(prefix="onexctl-silent-")
    path = os.path.join(directory, "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
    os.unlink(path)
    os.rmdir(directory)


@pytest.mark.integration
def test_request_timeout(silent_socket: str) -> None:
    """--request-timeout and ONEXD_REQUEST_TIMEOUT give up on a silent daemon with a clear error, exit 1."""
    started = time.monotonic()
    flag = _ctl("health", "--socket", silent_socket, "--request-timeout", "0.5")
    env = _ctl("health", "--socket", silent_socket, env={"ONEXD_REQUEST_TIMEOUT": "0.5"})
    assert time.monotonic() - started < 20
    for proc in (flag, env):
        assert proc.returncode == 1 and "no answer" in proc.stderr and "Traceback" not in proc.stderr
    for bad in ("-1", "soon"):
        refused = _ctl("health", "--socket", silent_socket, "--request-timeout", bad)
        assert refused.returncode == 2 and "seconds" in refused.stderr
    assert _ctl("health", "--socket", silent_socket, env={"ONEXD_REQUEST_TIMEOUT": "-1"}).returncode != 0


@pytest.mark.integration
def test_version_shows_client_and_server(fake: Daemon) -> None:
    """onexctl version names both sides; without a daemon it still shows the client and exits 1."""
    data = json.loads(_ctl("version", "-o", "json", "--socket", str(fake.socket)).stdout)
    assert data["client"]["version"] and data["server"]["apiVersion"] == "onexd/v1"
    text = _ctl("version", "--socket", str(fake.socket)).stdout
    assert "Client: onexctl" in text and "Server: onexd" in text
    gone = _ctl("version", "--socket", str(fake.socket.parent / "nope.sock"))
    assert gone.returncode == 1 and "Client: onexctl" in gone.stdout and "Server: unreachable" in gone.stdout


@pytest.mark.integration
def test_short_ids_prefixes_and_no_trunc(fake: Daemon) -> None:
    """The job table shows 16-character ids (--no-trunc: full); any unique prefix of 8+ characters works for
    get, logs and cancel; a shorter one is not found."""
    sock = str(fake.socket)
    record = json.loads(_ctl("job", "run", "hello", "--input", '{"name": "p"}', "--wait", "-o", "json",
                             "--socket", sock).stdout)
    job_id = record["id"]
    table = _ctl("job", "list", "--socket", sock).stdout
    assert job_id[:16] in table and job_id not in table
    assert job_id in _ctl("job", "list", "--no-trunc", "--socket", sock).stdout
    short = job_id[:16]
    assert json.loads(_ctl("job", "get", short, "-o", "json", "--socket", sock).stdout)["id"] == job_id
    assert _ctl("job", "logs", short, "--socket", sock).stdout == '{"name":"p"}\n'
    assert _ctl("job", "cancel", short, "--socket", sock).returncode == 0
    too_short = _ctl("job", "get", job_id[:7], "--socket", sock)
    assert too_short.returncode == 1 and "no such job" in too_short.stderr


@pytest.mark.integration
def test_ambiguous_prefix_is_400(fake: Daemon) -> None:
    """Two jobs sharing a prefix: that prefix is answered 400 with a message saying to give more characters."""
    sock = str(fake.socket)
    ids: list[str] = []
    while len(_common(ids[-2:])) < 8 or len(ids) < 2:  # ids share 8 digits within about a minute
        assert len(ids) < 4
        ids.append(json.loads(_ctl("job", "run", "hello", "--input", '{"name": "a"}', "--wait", "-o", "json",
                                   "--socket", sock).stdout)["id"])
    common = _common(ids[-2:])
    code, answer = fake.curl("GET", f"/v1/jobs/{common[:8]}")
    assert code == 400 and "more than one job" in answer["error"]["message"]
    ambiguous = _ctl("job", "get", common[:8], "--socket", sock)
    assert ambiguous.returncode == 3 and "more than one job" in ambiguous.stderr


def test_store_resolves_prefixes(tmp_path: Path) -> None:
    """JobStore.resolve: exact ids and unique prefixes (8+ hex) resolve; short, non-hex or unknown do not."""
    from onexd.jobs.records import JobRecord

    store = JobStore(tmp_path / "jobs.db")
    a, b = new_job_id(1_700_000_000.0), new_job_id(1_700_000_000.0)
    for job_id in (a, b):
        store.put(JobRecord(id=job_id, status="succeeded", principal="UnixUser:root", policy_digest="d",
                            policy_bundles={}, created_at=0.0))
    assert store.resolve(a) == a and store.resolve(b) == b
    distinct = _common([a, b])
    assert store.resolve(a[: len(distinct) + 1]) == a
    with pytest.raises(AmbiguousJobId):
        store.resolve(distinct[:12])
    assert store.resolve(a[:7]) is None and store.resolve("zzzzzzzzzz") is None
    with pytest.raises(AmbiguousJobId):
        store.resolve(distinct[:12], "UnixUser:root")  # both are root's: still two
    store.put(JobRecord(id=a, status="succeeded", principal="UnixUser:alice", policy_digest="d",
                        policy_bundles={}, created_at=0.0))
    assert store.resolve(distinct[:12], "UnixUser:alice") == a and store.resolve(distinct[:12], "x") is None
    assert store.resolve("f" * 32) is None
    store.close()


@pytest.mark.integration
def test_tables_render_nested_values_for_people(fake: Daemon) -> None:
    """A job's policy bundles and the zone allowlists show as key=value and lists, never as JSON."""
    sock = str(fake.socket)
    record = json.loads(_ctl("job", "run", "hello", "--input", '{"name": "t"}', "--wait", "-o", "json",
                             "--socket", sock).stdout)
    detail = _ctl("job", "get", record["id"], "--socket", sock).stdout
    assert "bundles=(" in detail and "hello=" in detail and "{\"hello" not in detail
    zones = _ctl("zone", "list", "--socket", sock).stdout
    assert '["' not in zones and '{"' not in zones


@pytest.mark.integration
def test_policy_explain_renders_like_onexd(fake: Daemon) -> None:
    """onexctl policy explain prints the same readable text as onexd policy explain (verdict, sandbox table)."""
    request = str(ROOT / "examples/requests/hello.json")
    remote = _ctl("policy", "explain", request, "--socket", str(fake.socket))
    local = subprocess.run([ONEXD, "policy", "explain", "--policy-dir", str(fake.policy_dir), "--as",
                            "UnixUser:root", request], capture_output=True, text=True, check=False)
    assert remote.returncode == local.returncode == 0
    assert remote.stdout.splitlines()[0] == local.stdout.splitlines()[0]
    assert remote.stdout.startswith("ALLOWED") and "Effective sandbox" in remote.stdout
    # the sandbox lines are the same (the policy digest line differs only if the policies differ)
    assert remote.stdout.splitlines()[:-1] == local.stdout.splitlines()[:-1]


@pytest.mark.integration
def test_audit_tail_follow_does_not_feed_itself(fake: Daemon) -> None:
    """Reading GET /v1/audit is audited in aggregate (a principal's first read, then at most hourly), so repeated
    reads add nothing to the trail; tail -f long-polls and prints a job's events as they happen, and none of its
    own reads."""
    sock = str(fake.socket)
    token = _ctl("token", "issue", "--subject", "auditor", "--socket", sock).stdout.strip()
    last = fake.curl("GET", "/v1/audit?limit=1")[1]["lastSeq"]
    for _ in range(3):
        assert fake.curl("GET", f"/v1/audit?since={last}")[1]["events"] == []
    assert _ctl("audit", "tail", "-n", "5", "--socket", sock).returncode == 0
    assert fake.curl("GET", "/v1/audit?limit=1")[1]["lastSeq"] == last
    denied = _ctl("audit", "tail", "--token", token, "--socket", sock)
    assert denied.returncode == 3  # Token:auditor has no role: the denial is audited
    last = fake.curl("GET", "/v1/audit?limit=1")[1]["lastSeq"]
    follower = subprocess.Popen([ONEXCTL, "audit", "tail", "-f", "--since", str(last), "-o", "json", "--socket", sock],
                                stdout=subprocess.PIPE, text=True)
    polled: list[tuple[int, object]] = []
    poll = threading.Thread(target=lambda: polled.append(fake.curl("GET", f"/v1/audit?since={last}&wait=20")))
    try:
        assert follower.stdout is not None
        poll.start()
        run = _ctl("job", "run", "hello", "--input", '{"name": "f"}', "--wait", "--socket", sock)
        assert run.returncode == 0
        lines: queue.Queue[str] = queue.Queue()
        stdout = follower.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        seen: list[dict[str, object]] = []
        while not any(e["type"] == "job.finished" for e in seen):
            try:
                seen.append(json.loads(lines.get(timeout=20)))
            except queue.Empty:
                pytest.fail(f"tail -f printed only {seen}")
        poll.join(timeout=30)
        code, answer = polled[0]
        assert code == 200 and answer["events"]  # type: ignore[index]  # the long poll answered the job's event
        reads = [e for e in seen if isinstance(e.get("data"), dict)
                 and e["data"].get("permission") == "audit:read"]  # type: ignore[union-attr]
        assert reads == []
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        if follower.stdout is not None:
            follower.stdout.close()


@pytest.mark.integration
def test_a_following_tail_does_not_hold_up_shutdown(fake: Daemon) -> None:
    """The daemon stops at once while audit tail -f long-polls (the poll answers on shutdown), and the follower
    then ends with a connection error rather than hanging."""
    token_events = fake.curl("GET", "/v1/audit?limit=1")[1]["lastSeq"]
    follower = subprocess.Popen([ONEXCTL, "audit", "tail", "-f", "--since", str(token_events), "--socket",
                                 str(fake.socket)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        code, _ = fake.curl("GET", f"/v1/audit?since={token_events}&wait=0.5")  # the follower is polling by now
        assert code == 200
        started = time.monotonic()
        assert fake.stop() == 0
        assert time.monotonic() - started < 10
        assert follower.wait(timeout=30) == 1
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        if follower.stderr is not None:
            follower.stderr.close()


@pytest.mark.integration
def test_a_prefix_resolves_among_the_callers_own_jobs(fake: Daemon) -> None:
    """A caller who may read only its own jobs gets its job for a prefix another principal's job shares too
    (never a 400 that reveals the other job)."""
    sock = str(fake.socket)
    ids: list[str] = []
    while len(ids) < 2 or len(_common(ids[-2:])) < 8:
        assert len(ids) < 6
        for uid in (None, 4242):
            run = _ctl("job", "run", "--profile", "busybox-tiny", "--wait", "-o", "json", "--socket", sock,
                       "--", "echo", "hi", uid=uid)
            assert run.returncode == 0, run.stderr
            ids.append(json.loads(run.stdout)["id"])
    prefix = _common(ids[-2:])[:8]
    own = _ctl("job", "get", prefix, "-o", "json", "--socket", sock, uid=4242)
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["id"] == ids[-1] and json.loads(own.stdout)["principal"] == "UnixUser:4242"
    assert _ctl("job", "get", prefix, "--socket", sock).returncode == 3  # root reads everyone's: ambiguous


@pytest.mark.integration
def test_a_denied_read_of_the_trail_is_recorded(fake: Daemon) -> None:
    """Only an allowed read of GET /v1/audit is left out of the trail: a denied one is an authz.decision event."""
    sock = str(fake.socket)
    token = _ctl("token", "issue", "--subject", "auditor", "--socket", sock).stdout.strip()
    last = fake.curl("GET", "/v1/audit?limit=1")[1]["lastSeq"]
    assert _ctl("audit", "tail", "--token", token, "--socket", sock).returncode == 3
    events = fake.curl("GET", f"/v1/audit?since={last}")[1]["events"]
    assert [(e["type"], e["outcome"], e["principal"], e["data"]["permission"]) for e in events
            if e["type"] == "authz.decision"] == [("authz.decision", "denied", "Token:auditor", "audit:read")]
