"""Issue 12, identity and API findings 11–16, through a real daemon on the fake runtime (curl over the socket)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from onexd.crypto import generate_ed25519, jwt_sign, key_id, to_jwk
from tests.conftest import doc, write_bundle
from tests.daemon.conftest import ONEXD, Daemon

pytestmark = pytest.mark.integration

IDP = "https://idp.example"


def _raw(d: Daemon, *headers: str, path: str = "/v1/health", method: str = "GET",
         data: bytes | None = None) -> tuple[int, Any]:
    cmd = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", str(d.socket), "-X", method]
    for header in headers:
        cmd += ["-H", header]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    out = subprocess.run([*cmd, f"http://onexd{path}"], input=data, capture_output=True, timeout=60,
                         check=False).stdout
    text, _, code = out.decode(errors="replace").rpartition("\n")
    return int(code), json.loads(text) if text.strip().startswith("{") else text


def _events(d: Daemon, type_: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((d.state_dir / "audit").glob("audit-*.jsonl")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["type"] == type_:
                out.append(event)
    return out


@pytest.fixture
def silent_jwks() -> Iterator[str]:
    """A loopback HTTP server that accepts connections and never answers: a JWKS URL that hangs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _external_token(key: Any, kid: str, sub: str, issuer: str = IDP) -> str:
    now = int(time.time())
    return jwt_sign({"iss": issuer, "aud": "onexd", "sub": sub, "iat": now, "exp": now + 300, "jti": f"j-{sub}"},
                    key, kid)


def test_finding_11_unanswered_jwks_does_not_freeze_the_daemon(daemons: Callable[..., Daemon],
                                                               silent_jwks: str) -> None:
    """Three tokens claiming an issuer whose JWKS URL never answers: each gets a 401 within the bounded wait;
    meanwhile /version and a Unix peer's requests answer within 0.5 s; a later token is refused at once
    (the failed fetch is remembered, with backoff)."""
    d = daemons(backend="fake", extra={"auth": {"jwksIssuers": [
        {"issuer": IDP, "audience": "onexd", "jwksUrl": silent_jwks}]}})
    d.start()
    key = generate_ed25519()
    token = _external_token(key, key_id(key.public_key()), "ci-bot")
    with ThreadPoolExecutor(3) as pool:
        started = time.monotonic()
        hostile = [pool.submit(_raw, d, f"Authorization: Bearer {token}") for _ in range(3)]
        time.sleep(0.3)  # the three requests are waiting for the issuer's keys
        for path in ("/version", "/v1/health"):
            t0 = time.monotonic()
            assert d.curl("GET", path)[0] == 200
            assert time.monotonic() - t0 < 0.5, path
        answers = [f.result() for f in hostile]
        assert time.monotonic() - started < 8  # the fetch times out at 5 s; the wait per request is bounded
    assert all(code == 401 and body["error"]["code"] == "invalid-token" for code, body in answers), answers
    t0 = time.monotonic()
    assert _raw(d, f"Authorization: Bearer {token}")[0] == 401
    assert time.monotonic() - t0 < 0.5  # negative caching: no second wait while the backoff holds


def test_finding_12_failed_authentications_are_rate_limited_by_peer(daemons: Callable[..., Daemon]) -> None:
    """Bad API keys from one uid: each refused with 401 and an auth.failure event until the peer's budget is
    spent, then 429 without even looking at the key; another uid is unaffected."""
    d = daemons(backend="fake", with_testers=True)
    d.start()
    codes = [_raw(d, f"X-API-Key: onexd_nope{i}")[0] for i in range(40)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}, codes
    assert len(_events(d, "auth.failure")) == 10
    other = subprocess.run(["setpriv", "--reuid=4242", "--regid=4242", "--groups=4243", "curl", "-s", "-o",
                            "/dev/null", "-w", "%{http_code}", "-H", "X-API-Key: onexd_bad", "--unix-socket",
                            str(d.socket), "http://onexd/v1/health"], capture_output=True, text=True,
                           check=False).stdout
    assert other == "401"
    assert d.curl("GET", "/v1/health")[0] == 200  # the peer itself, without credentials, is still served


def test_finding_12_non_ascii_authorization_is_401_and_audited(daemons: Callable[..., Daemon]) -> None:
    """A non-ASCII Authorization or X-API-Key header is a 401 with an auth.failure event, never a 500; so is a
    token whose header holds a lone surrogate."""
    d = daemons(backend="fake")
    d.start()
    head = "eyJhbGciOiJcdWQ4MDAiLCJraWQiOiJ4In0"  # {"alg":"\ud800","kid":"x"}
    for header in (b"Authorization: Bearer t\xe9st", "X-API-Key: k\u00ff\u00fe".encode(),
                   f"Authorization: Bearer {head}.e30.AAAA".encode(), b"Authorization: Bearer \xed\xa0\x80"):
        out = subprocess.run([b"curl", b"-s", b"-w", b"\n%{http_code}", b"-H", header, b"--unix-socket",
                              str(d.socket).encode(), b"http://onexd/v1/health"], capture_output=True,
                             check=False).stdout
        assert out.endswith(b"401"), out
    failures = _events(d, "auth.failure")
    assert len(failures) == 4 and all(e["outcome"] == "failure" for e in failures)


def test_finding_13_external_subjects_are_namespaced_by_issuer(daemons: Callable[..., Daemon],
                                                                tmp_path: Path) -> None:
    """An external token with sub ci-bot is Token:https://idp.example#ci-bot: it does not get the roles bound
    to onexd's own Token:ci-bot, and does get those of a binding that names its issuer."""
    key = generate_ed25519()
    kid = key_id(key.public_key())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [to_jwk(key.public_key(), kid)]}))
    d = daemons(backend="fake", extra={"auth": {"jwksIssuers": [
        {"issuer": IDP, "audience": "onexd", "jwksFile": str(jwks)}]}})
    write_bundle(d.policy_dir, "bots", [
        doc("Role", "runner", {"permissions": ["nodes:execute", "jobs:read"], "capabilities": ["run-hello"]}),
        doc("RoleBinding", "own-bot", {"roles": ["runner"], "subjects": [{"kind": "Token", "name": "ci-bot"}]}),
    ])
    d.start()
    job = {"node": "hello", "input": {"name": "x"}}
    own = subprocess.run([str(Path(sys.executable).parent / "onexctl"), "--socket", str(d.socket), "token", "issue",
                          "--subject", "ci-bot", "--ttl", "10m"], capture_output=True, text=True, check=True)
    code, record = _raw(d, f"Authorization: Bearer {own.stdout.strip()}", path="/v1/jobs?wait=true",
                        method="POST", data=json.dumps(job).encode())
    assert code == 200 and record["principal"] == "Token:ci-bot", record  # onexd's own ci-bot is bound
    token = _external_token(key, kid, "ci-bot")
    code, answer = _raw(d, f"Authorization: Bearer {token}", path="/v1/jobs?wait=true", method="POST",
                        data=json.dumps(job).encode())
    assert code == 403, answer
    assert f"Token:{IDP}#ci-bot" in answer["error"]["message"]
    write_bundle(d.policy_dir, "bots", [
        doc("Role", "runner", {"permissions": ["nodes:execute", "jobs:read"], "capabilities": ["run-hello"]}),
        doc("RoleBinding", "idp-bot", {"roles": ["runner"],
                                       "subjects": [{"kind": "Token", "name": "ci-bot", "issuer": IDP}]}),
    ], version="1.0.1")
    assert d.curl("POST", "/v1/policy/reload")[0] == 200
    code, record = _raw(d, f"Authorization: Bearer {token}", path="/v1/jobs?wait=true", method="POST",
                        data=json.dumps(job).encode())
    assert code == 200 and record["principal"] == f"Token:{IDP}#ci-bot", record


HOSTILE_BODIES = [
    ("/v1/jobs", b'{"node":"hello","input":"\\ud800"}'),
    ("/v1/jobs", b'{"node":"hello","input":{"\\udfff":1}}'),
    ("/v1/jobs", b'{"node":"hello","input":{"name":"x"},"timeoutSeconds":null}'),
    ("/v1/jobs", b'{"profile":"busybox","command":null}'),
    ("/v1/jobs", b'{"node":"hello","input":{"name":NaN}}'),
    ("/v1/jobs", b'{"node":"hello","input":{"name":Infinity}}'),
    ("/v1/jobs", b'{"node":"hello","input":{"name":-Infinity}}'),
    ("/v1/jobs", b'{"node":"hello","input":{"name":1e400}}'),
    ("/v1/policy/reload", b'{"allowRollback":["\\ud800"]}'),
    ("/v1/policy/explain", b'{"request":{"node":"hello","input":"\\ud800"}}'),
]


def test_finding_14_hostile_bodies_are_400(daemons: Callable[..., Daemon]) -> None:
    """Lone surrogates, explicit nulls, NaN/Infinity and numbers beyond a double are each a 400 in the error
    shape, never a 500; the daemon keeps answering."""
    d = daemons(backend="fake")
    d.start()
    for path, body in HOSTILE_BODIES:
        code, answer = d.curl("POST", path, raw=body)
        assert code == 400 and answer["error"]["code"] in ("invalid-json", "invalid-string", "invalid-request"), \
            (body, answer)
    assert d.curl("GET", "/version")[0] == 200


def _node_with_schema(d: Daemon, schema: dict[str, Any], version: str = "1.0.0") -> None:
    write_bundle(d.policy_dir, "schemas", [
        doc("Node", "schema-node", {"version": "1.0.0", "profile": "python-small", "command": ["true"],
                                    "source": {"path": "nodes/x"}, "inputSchema": schema}),
    ], version=version, files={"nodes/x/main.py": "print(1)\n"})


@pytest.mark.parametrize("schema", [{"$ref": "#"}, {"$ref": "#/$defs/missing"},
                                    {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
                                    {"type": "string", "pattern": "^(a)\\1$"}],
                         ids=["self-ref", "dangling", "loop", "backreference"])
def test_finding_14_input_schemas_that_break_submit_are_rejected_at_load(daemons: Callable[..., Daemon],
                                                                         schema: dict[str, Any]) -> None:
    """A node inputSchema with a dangling or looping $ref, or a pattern RE2 cannot run, rejects its bundle at
    load (the node does not exist); submit and explain answer 4xx, never 500."""
    d = daemons(backend="fake")
    _node_with_schema(d, schema)
    d.start()
    status = d.curl("GET", "/v1/policy")[1]
    assert "schemas" not in [b["name"] for b in status["bundles"]]
    assert "inputSchema" in json.dumps(status["rejections"]), status
    body = {"node": "schema-node", "input": "a"}
    assert d.curl("POST", "/v1/jobs", body)[0] in (403, 404, 400)
    assert d.curl("POST", "/v1/policy/explain", {"request": body})[0] == 200


def test_finding_14_catastrophic_pattern_does_not_stall_the_loop(daemons: Callable[..., Daemon]) -> None:
    """An inputSchema pattern `^(a+)+$` (catastrophic for a backtracking engine) against 28 characters and a
    bang: the submission is a prompt 400 and /version answers within 0.5 s meanwhile."""
    d = daemons(backend="fake")
    _node_with_schema(d, {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
                          "patternProperties": {"^(b+)+$": {"type": "string"}}})
    write_bundle(d.policy_dir, "schema-access", [
        doc("Capability", "run-schema", {"nodes": ["schema-node"], "profiles": ["python-small"]}),
        doc("Role", "schema-runner", {"permissions": ["nodes:execute"], "capabilities": ["run-schema"]}),
        doc("RoleBinding", "root-schema", {"roles": ["schema-runner"],
                                           "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])
    d.start()
    hostile = {"node": "schema-node", "input": {"s": "a" * 28 + "!", "b" * 28 + "!": 1}}
    with ThreadPoolExecutor(2) as pool:
        t0 = time.monotonic()
        submit = pool.submit(d.curl, "POST", "/v1/jobs", hostile)
        assert d.curl("GET", "/version")[0] == 200
        assert time.monotonic() - t0 < 0.5
        code, answer = submit.result()
    assert code == 400 and answer["error"]["code"] == "invalid-input", answer
    assert time.monotonic() - t0 < 2


# Short timeouts for the stalled-connection tests: the same behaviour as with the 10 s defaults (pinned in
# tests/test_config_api.py), without waiting for them.
SHORT_TIMEOUTS = {"headerTimeoutSeconds": 0.5, "bodyTimeoutSeconds": 0.5}


def test_finding_15_stalled_connections_are_closed(daemons: Callable[..., Daemon]) -> None:
    """Half-sent request headers and a stalled body are closed within the configured timeouts (0.5 s each here;
    the body with a 408 in the error shape), and an over-long request line is answered in the error shape."""
    d = daemons(backend="fake", extra={"api": SHORT_TIMEOUTS})
    d.start()
    stalled = []
    for _ in range(50):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.socket))
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: onexd\r\nX-Half: ")
        stalled.append(s)
    long_line = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    long_line.connect(str(d.socket))
    long_line.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: onexd\r\n\r\n")
    long_line.settimeout(5)
    answer = long_line.recv(65536)
    long_line.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"400", b"414"), head
    assert b"application/json" in head and json.loads(body)["error"]["correlationId"], answer
    assert json.loads(body)["error"]["message"] == "a request line or header is over 8190 bytes"  # not echoed
    assert d.curl("GET", "/version")[0] == 200  # the stalled connections do not stop others
    deadline = time.monotonic() + 5
    for s in stalled:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        assert s.recv(1024) == b""  # closed by the daemon (a timeout here raises and fails the test)
        s.close()
    assert time.monotonic() < deadline
    body_stall = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    body_stall.connect(str(d.socket))
    body_stall.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: onexd\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 100\r\n\r\n{\"node\":")
    body_stall.settimeout(5)
    answer = body_stall.recv(65536)
    body_stall.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"body-timeout" in answer, answer


def test_configured_header_timeout_closes_a_stalled_connection(daemons: Callable[..., Daemon]) -> None:
    """With `api.headerTimeoutSeconds: 0.5`, half-sent headers and an idle kept-alive connection are closed by
    the daemon long before the 10 s default would close them."""
    d = daemons(backend="fake", extra={"api": {"headerTimeoutSeconds": 0.5}})
    d.start()
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(str(d.socket))
    half.sendall(b"GET /v1/health HTTP/1.1\r\nHost: onexd\r\nX-Half: ")
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(str(d.socket))
    idle.sendall(b"GET /version HTTP/1.1\r\nHost: onexd\r\n\r\n")
    for s in (half, idle):
        s.settimeout(5)  # half the default: a daemon that ignored the setting would still hold them (and fail here)
    received = b""
    while not received.endswith(b"}"):  # the answer to the idle connection's one request
        received += idle.recv(65536)
    assert received.startswith(b"HTTP/1.1 200"), received
    assert half.recv(1024) == b""  # closed by the daemon
    assert idle.recv(1024) == b""  # closed while waiting for a next request
    half.close()
    idle.close()
    assert d.curl("GET", "/version")[0] == 200


def _one_past_the_cap(d: Daemon, cap: int) -> bytes:
    """Hold `cap` connections, return what one more is answered, then close them all and wait until the daemon
    serves again."""
    held = []
    for _ in range(cap):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.socket))
        held.append(s)
    time.sleep(0.2)  # the daemon has accepted them
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    extra.connect(str(d.socket))
    extra.settimeout(5)
    answer = extra.recv(65536)
    extra.close()
    for s in held:
        s.close()
    deadline = time.monotonic() + 5
    while d.curl("GET", "/version")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return answer


def test_configured_connection_cap_and_failure_budget(daemons: Callable[..., Daemon]) -> None:
    """With `api.maxConnections: 8` the ninth connection is answered 503 naming the cap; with
    `authFailureBurst: 3` (and 1 a minute) the fourth bad API key from a peer is a 429 without being looked at."""
    d = daemons(backend="fake", extra={"api": {"maxConnections": 8, "authFailureBurst": 3,
                                               "authFailuresPerMinute": 1}})
    d.start()
    ready = next(json.loads(line) for line in d.log.read_text().splitlines() if '"onexd ready"' in line)
    assert ready["api"]["maxConnections"] == 8 and ready["api"]["authFailureBurst"] == 3  # the bounds in force
    answer = _one_past_the_cap(d, 8)
    assert answer.startswith(b"HTTP/1.1 503") and b"at most 8 connections" in answer, answer
    codes = [_raw(d, f"X-API-Key: onexd_nope{i}")[0] for i in range(5)]
    assert codes == [401, 401, 401, 429, 429], codes
    assert len(_events(d, "auth.failure")) == 3


def test_a_success_between_failed_authentications_does_not_restore_the_budget(
        daemons: Callable[..., Daemon]) -> None:
    """The failure budget is a bucket, not a count of failures in a row: with `authFailureBurst: 2` (1 a minute) a
    valid API key between the two bad ones does not refill it, so the peer's next key, even the valid one, is a 429."""
    d = daemons(backend="fake", extra={"api": {"authFailureBurst": 2, "authFailuresPerMinute": 1}})
    d.start()
    code, created = _raw(d, path="/v1/apikeys", method="POST", data=b'{"name": "between", "ttlDays": 1}')
    assert code == 201, created
    good, bad = f"X-API-Key: {created['key']}", "X-API-Key: onexd_nope"
    codes = [_raw(d, header)[0] for header in (bad, good, bad, good)]
    assert codes == [401, 200, 401, 429], codes

def test_finding_15_connection_cap(daemons: Callable[..., Daemon]) -> None:
    """Past the connection cap a new connection is answered 503 in the error shape and closed; once others
    close, new connections are served again."""
    d = daemons(backend="fake")
    d.start()
    answer = _one_past_the_cap(d, 256)
    assert answer.startswith(b"HTTP/1.1 503") and b"too-many-connections" in answer, answer


def test_finding_16_reading_cancelling_and_logs_are_audited(daemons: Callable[..., Daemon]) -> None:
    """GET /v1/jobs/{id}, its logs, and DELETE each write an authz.decision event (allowed for the owner;
    denied for another uid, who gets 404)."""
    d = daemons(backend="fake", with_testers=True)
    d.start()
    code, record = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "a"}})
    assert code == 200
    job = record["id"]
    before = len(_events(d, "authz.decision"))
    assert d.curl("GET", f"/v1/jobs/{job}")[0] == 200
    assert d.curl("GET", f"/v1/jobs/{job}/logs")[0] == 200
    assert d.curl("DELETE", f"/v1/jobs/{job}")[0] == 200
    assert d.curl("GET", f"/v1/jobs/{job}", uid=4242)[0] == 404
    decisions = _events(d, "authz.decision")[before:]
    assert len(decisions) == 4 and all(e["data"]["target"] == f"job {job}" for e in decisions)
    assert [e["outcome"] for e in decisions] == ["allowed", "allowed", "allowed", "denied"]


def test_finding_16_audit_tail_follow_does_not_feed_itself(daemons: Callable[..., Daemon]) -> None:
    """`onexctl audit tail -f` for 4 s writes at most one event per poll, not a busy loop of reading its own
    previous poll's event (105 events in 6 s before)."""
    d = daemons(backend="fake")
    d.start()
    onexctl = str(Path(sys.executable).parent / "onexctl")
    before = len(_events(d, "authz.decision"))
    proc = subprocess.Popen([onexctl, "--socket", str(d.socket), "audit", "tail", "-f", "-n", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(4)
    assert proc.poll() is None, proc.communicate()  # still following
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    written = len(_events(d, "authz.decision")) - before
    assert written <= 8, (written, err)  # at most one per poll (none: reads of the trail are not recorded)
    assert out.count(b"authz.decision") <= 1, out  # the follower does not print its own polls back


def _answers(d: Daemon, count: int) -> dict[bytes, int]:
    """Open `count` connections at once (before the daemon has accepted any), then send each a request: the
    status line each is answered with, counted."""
    held = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.socket))
        held.append(s)
    seen: dict[bytes, int] = {}
    for s in held:
        s.settimeout(5)
        with contextlib.suppress(OSError):  # a refused connection may already be closed
            s.sendall(b"GET /version HTTP/1.1\r\nHost: onexd\r\n\r\n")
        status = s.recv(65536)[:12]
        seen[status] = seen.get(status, 0) + 1
    for s in held:
        s.close()
    return seen


def test_connection_cap_holds_when_connections_arrive_together(daemons: Callable[..., Daemon]) -> None:
    """Twenty connections opened at once against `maxConnections: 8` are at most 8 served, the rest 503."""
    d = daemons(backend="fake", extra={"api": {"maxConnections": 8, "headerTimeoutSeconds": 5}})
    d.start()
    seen = _answers(d, 20)
    assert seen.get(b"HTTP/1.1 200", 0) <= 8 and seen.get(b"HTTP/1.1 503", 0) >= 12, seen
    deadline = time.monotonic() + 5
    while d.curl("GET", "/version")[0] != 200:  # the slots come back once the connections close
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _closed_while_dribbling(d: Daemon, head: bytes, within: float) -> tuple[bytes, float]:
    """Send head, then one body byte every 50 ms: what the daemon answered and when it closed the connection
    (seconds from the head; a connection still open after `within` raises)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.socket))
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(0.05):
            try:
                s.sendall(b" ")
            except OSError:
                return

    started = time.monotonic()
    s.sendall(head)
    sender = threading.Thread(target=dribble)
    sender.start()
    answer = b""
    try:
        s.settimeout(within)
        while chunk := s.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started
    finally:
        stop.set()
        sender.join()
        s.close()


def test_dribbled_body_does_not_hold_a_connection_past_the_body_timeout(daemons: Callable[..., Daemon]) -> None:
    """With `bodyTimeoutSeconds: 0.1`, a body dribbled forever is closed within a second, whether the route
    reads it (408) or not (answered, then the unread rest is not waited for 10 s)."""
    d = daemons(backend="fake", extra={"api": {"headerTimeoutSeconds": 0.1, "bodyTimeoutSeconds": 0.1}})
    d.start()
    post = (b"POST /v1/jobs HTTP/1.1\r\nHost: onexd\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n")
    answer, took = _closed_while_dribbling(d, post, within=5)
    assert answer.startswith(b"HTTP/1.1 408") and took < 1, (answer[:80], took)
    get = b"GET /version HTTP/1.1\r\nHost: onexd\r\nContent-Length: 100000\r\n\r\n"
    answer, took = _closed_while_dribbling(d, get, within=5)
    assert answer.startswith(b"HTTP/1.1 200") and took < 1, (answer[:80], took)
    assert d.curl("GET", "/version")[0] == 200


def test_callers_that_stop_reading_answers_do_not_hold_the_connections(daemons: Callable[..., Daemon]) -> None:
    """Eight connections that pipeline requests and never read an answer (the daemon's writes stall) are closed
    after the body timeout (0.5 s here), so with `maxConnections: 8` others are served again within seconds."""
    d = daemons(backend="fake", extra={"api": {"maxConnections": 8, "headerTimeoutSeconds": 0.5,
                                               "bodyTimeoutSeconds": 0.5}})
    d.start()
    held = []
    for _ in range(8):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(str(d.socket))
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # send until the daemon stops taking requests
            for _ in range(2000):
                s.send(b"GET /openapi.json HTTP/1.1\r\nHost: onexd\r\n\r\n")
        held.append(s)
    try:
        deadline = time.monotonic() + 5
        while (code := d.curl("GET", "/version", timeout=5)[0]) != 200:
            assert time.monotonic() < deadline, f"still {code}: the stalled readers hold every connection"
            time.sleep(0.1)
    finally:
        for s in held:
            s.close()


def _start_with_open_files(d: Daemon, soft: int, hard: int) -> subprocess.CompletedProcess[bytes] | None:
    """Start d under an open-file limit: the finished process if serve exits within 30 s, None once it answers."""
    with d.log.open("ab") as log:
        d.proc = subprocess.Popen(["prlimit", f"--nofile={soft}:{hard}", ONEXD, "serve", "--config", str(d.config)],
                                  stdout=log, stderr=log, env={**os.environ, **d.env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code = d.proc.poll()
        if code is not None:
            d.proc = None
            return subprocess.CompletedProcess([], code, d.log.read_bytes(), b"")
        if d.socket.exists() and d.curl("GET", "/version")[0] == 200:
            return None
        time.sleep(0.05)
    raise AssertionError("onexd neither exited nor answered")


def test_connection_cap_beyond_the_open_file_limit_is_refused_at_start(daemons: Callable[..., Daemon]) -> None:
    """`maxConnections: 4096` under a hard open-file limit of 256 is refused by serve (exit 2, field named) before
    the state directory is written, instead of a daemon that stops answering at its 250th connection."""
    d = daemons(backend="fake", extra={"api": {"maxConnections": 4096}})
    finished = _start_with_open_files(d, 256, 256)
    assert finished is not None and finished.returncode == 2, finished
    assert b"api.maxConnections" in finished.stdout and b"4224 open files" in finished.stdout, finished.stdout
    assert not d.state_dir.exists()


def test_soft_open_file_limit_is_raised_for_the_connection_cap(daemons: Callable[..., Daemon]) -> None:
    """Under a soft open-file limit of 256 (hard 8192), a daemon with `maxConnections: 512` raises its soft limit:
    300 held connections do not stop it answering others."""
    d = daemons(backend="fake", extra={"api": {"maxConnections": 512, "headerTimeoutSeconds": 30}})
    assert _start_with_open_files(d, 256, 8192) is None
    held = []
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(d.socket))
            held.append(s)
        assert d.curl("GET", "/version", timeout=10)[0] == 200
    finally:
        for s in held:
            s.close()


def _answer(d: Daemon, request: bytes) -> bytes:
    """Send one raw request and read its answer until the daemon closes the connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(d.socket))
    s.settimeout(5)
    s.sendall(request)
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(65536):
            answer += chunk
    s.close()
    return answer


def test_body_that_does_not_decode_is_400_and_logs_no_traceback(daemons: Callable[..., Daemon]) -> None:
    """A body declared gzip is a 400 in the error shape where a route reads it (a gzip body that was not gzip was a
    500), a body cut short by the caller is no 500 either, and where no route reads the body (the daemon reads the
    rest after answering) nothing is an unstructured traceback in the log."""
    d = daemons(backend="fake")
    d.start()
    body = b'{"node": "hello"}'
    head = (f"Host: onexd\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer = _answer(d, b"POST /v1/jobs HTTP/1.1\r\n" + head + body)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 400 Bad Request", answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "unsupported-encoding", answer[:300]
    assert _answer(d, b"GET /version HTTP/1.1\r\n" + head + body).startswith(b"HTTP/1.1 200"), answer[:300]
    cut = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cut.connect(str(d.socket))
    cut.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: onexd\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + body)
    time.sleep(0.2)  # the route is reading the body
    cut.shutdown(socket.SHUT_WR)
    cut.settimeout(5)
    with contextlib.suppress(ConnectionResetError):
        while cut.recv(65536):
            pass
    cut.close()
    assert d.curl("GET", "/version")[0] == 200
    log = d.log.read_text()
    assert "Traceback" not in log and "Unhandled exception" not in log and '"status":500' not in log, log[-3000:]


def test_compressed_bodies_are_refused_unread(daemons: Callable[..., Daemon]) -> None:
    """A gzip body (here 200 MB of zeros in 200 kB) is refused as unsupported-encoding without being inflated:
    aiohttp inflated every such body on the event loop, a 1 MB bomb costing ~10 s of it."""
    d = daemons(backend="fake", extra={"api": {"bodyTimeoutSeconds": 0.5}})
    d.start()
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    bomb = b"".join(deflate.compress(bytes(1 << 20)) for _ in range(200)) + deflate.flush()
    for path in ("/v1/jobs", "/v1/policy/explain"):
        started = time.monotonic()
        answer = _answer(d, (f"POST {path} HTTP/1.1\r\nHost: onexd\r\nContent-Type: application/json\r\n"
                             f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\nConnection: close\r\n\r\n"
                             ).encode() + bomb)
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 400 Bad Request", answer[:300]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "unsupported-encoding", answer[:300]
        assert time.monotonic() - started < 2


def test_callers_past_the_cap_read_the_503_rather_than_a_reset(daemons: Callable[..., Daemon]) -> None:
    """With `maxConnections: 8` held, twenty curl requests (which send before reading) each read the 503: the
    refusal used to close with their request unread, and the kernel reset most of them (curl exit, no status)."""
    d = daemons(backend="fake", extra={"api": {"maxConnections": 8, "headerTimeoutSeconds": 30}})
    d.start()
    held = []
    for _ in range(8):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(d.socket))
        held.append(s)
    time.sleep(0.2)  # the daemon has accepted them
    try:
        codes = [d.curl("GET", "/version", timeout=10)[0] for _ in range(10)]
        codes += [d.curl("POST", "/v1/jobs", body={"node": "hello", "input": {"name": "x" * 50000}}, timeout=10)[0]
                  for _ in range(10)]
        assert codes == [503] * 20, codes
    finally:
        for s in held:
            s.close()


def test_metrics_listener_caps_its_connections(daemons: Callable[..., Daemon]) -> None:
    """The unauthenticated metrics listener serves at most 16 connections at once (the rest 503): 300 idle TCP
    connections to it used to hold 300 of the daemon's descriptors for aiohttp's 75 s keep-alive."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    d = daemons(backend="fake", extra={"metrics": {"listen": f"127.0.0.1:{port}"}})
    d.start()
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    seen: dict[bytes, int] = {}
    try:
        for s in held:
            with contextlib.suppress(OSError):  # a refused connection may already be closed
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: onexd\r\n\r\n")
            status = s.recv(65536)[:12]
            seen[status] = seen.get(status, 0) + 1
    finally:
        for s in held:
            s.close()
    assert seen.get(b"HTTP/1.1 200", 0) <= 16 and seen.get(b"HTTP/1.1 503", 0) >= 24, seen
    assert d.curl("GET", "/version")[0] == 200
