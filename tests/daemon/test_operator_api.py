"""Issue 13, the API an operator meets: nodes, OpenAPI that matches the server, HTTP semantics, the fake backend,
metrics (socket and TCP listener) and logs, each through a real `onexd serve` on the fake runtime backend."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from onexd.api.openapi import document
from tests.conftest import doc, write_bundle
from tests.daemon.conftest import Daemon

READER_UID = 4245  # may read everyone's jobs, may cancel none


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("onexd", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def call(d: Daemon, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
         ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request as root (the socket peer), with the answer's headers."""
    conn = _Conn(str(d.socket))
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload, headers={**({"Content-Type": "application/json"} if payload else {}),
                                                      **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, response.headers, data


def _daemon(daemons: Callable[..., Daemon], **extra: Any) -> Daemon:
    d = daemons(backend="fake", with_testers=True, extra=extra or None)
    write_bundle(d.policy_dir, "readers", [
        doc("Role", "reader", {"permissions": ["jobs:read-all"]}),
        doc("RoleBinding", "readers", {"roles": ["reader"], "subjects": [{"kind": "UnixUser",
                                                                          "name": str(READER_UID)}]}),
    ])
    return d


def _journal_env(d: Daemon) -> dict[str, str]:
    """JOURNAL_STREAM naming the daemon's log file, as systemd names the stream it connected to stderr."""
    d.log.touch()
    st = os.stat(d.log)
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


@pytest.mark.integration
def test_issue_13_4_nodes_are_listed_with_what_a_client_needs(daemons: Callable[..., Daemon]) -> None:
    """GET /v1/nodes and /v1/nodes/{name} (nodes:read) give name, version, bundle, profile, zone, secret names and
    input schema; an unknown node is 404; a caller without nodes:read is 403."""
    d = _daemon(daemons)
    d.start()
    code, listing = d.curl("GET", "/v1/nodes")
    assert code == 200 and [n["name"] for n in listing["nodes"]] == ["hello", "wordcount"]
    code, node = d.curl("GET", "/v1/nodes/wordcount")
    assert code == 200
    assert {k: node[k] for k in ("name", "version", "bundle", "profile", "zone", "secrets")} == {
        "name": "wordcount", "version": "1.2.0", "bundle": "data-job", "profile": "python-data", "zone": "analytics",
        "secrets": ["api-token"]}
    assert node["inputSchema"]["required"] == ["text"]
    assert d.curl("GET", "/v1/nodes/nope")[0] == 404
    code, denied = d.curl("GET", "/v1/nodes", uid=4242)
    assert code == 403 and denied["error"]["code"] == "denied"


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": spec["components"]}


def _check_answer(spec: dict[str, Any], method: str, template: str, status: int, headers: http.client.HTTPMessage,
                  data: bytes) -> None:
    """The status is one the document lists for the operation, and a JSON body fits the documented schema."""
    responses = spec["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template}: {status} is not documented ({sorted(responses)})"
    content = responses[str(status)].get("content", {})
    media = headers.get_content_type()
    assert media in content, f"{method} {template} {status}: {media} is not documented ({sorted(content)})"
    if media == "application/json":
        schema = _resolve(spec, content[media]["schema"])
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(json.loads(data))]
        assert errors == [], f"{method} {template} {status}: {errors[:3]}"


@pytest.mark.integration
def test_issue_13_12_openapi_is_valid_declares_security_and_matches_the_server(
        daemons: Callable[..., Daemon]) -> None:
    """/openapi.json passes openapi-spec-validator (3.1) and declares bearer and API-key schemes beside the Unix
    peer; every documented operation is sent (bodies valid against the documented request schema) and each
    answer's status, media type and body are documented."""
    d = _daemon(daemons)
    d.start()
    status, _, raw = call(d, "GET", "/openapi.json")
    spec = json.loads(raw)
    assert status == 200 and spec == json.loads(json.dumps(document()))
    validate_openapi(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        **spec["components"]["securitySchemes"]["apiKey"], "in": "header", "name": "X-API-Key"}
    assert {} in spec["security"] and spec["paths"]["/version"]["get"]["security"] == []

    job = json.loads(call(d, "POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "o"}})[2])["id"]
    sent: set[tuple[str, str]] = set()
    cases: list[tuple[str, str, str, Any, dict[str, str]]] = [
        ("GET", "/version", "/version", None, {}),
        ("GET", "/v1/health", "/v1/health", None, {}),
        ("POST", "/v1/jobs", "/v1/jobs", {"node": "hello", "input": {"name": "a"}}, {}),
        ("POST", "/v1/jobs", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "b"}}, {}),
        ("POST", "/v1/jobs", "/v1/jobs", {"node": "hello", "input": {"name": ""}}, {}),
        ("GET", "/v1/jobs", "/v1/jobs?limit=5&status=succeeded&all=true", None, {}),
        ("GET", "/v1/jobs", "/v1/jobs?status=bogus", None, {}),
        ("GET", "/v1/jobs/{id}", f"/v1/jobs/{job}", None, {}),
        ("GET", "/v1/jobs/{id}", "/v1/jobs/no-such-job", None, {}),
        ("GET", "/v1/jobs/{id}/logs", f"/v1/jobs/{job}/logs?follow=true", None, {}),
        ("DELETE", "/v1/jobs/{id}", f"/v1/jobs/{job}", None, {}),
        ("GET", "/v1/nodes", "/v1/nodes", None, {}),
        ("GET", "/v1/nodes/{name}", "/v1/nodes/hello", None, {}),
        ("GET", "/v1/policy", "/v1/policy", None, {}),
        ("POST", "/v1/policy/reload", "/v1/policy/reload", {"allowRollback": []}, {}),
        ("POST", "/v1/policy/explain", "/v1/policy/explain",
         {"request": {"node": "hello", "input": {"name": "e"}}, "subject": "Token:ci-bot"}, {}),
        ("GET", "/v1/keys/jwks", "/v1/keys/jwks", None, {}),
        ("GET", "/v1/keys", "/v1/keys", None, {}),
        ("POST", "/v1/keys/rotate", "/v1/keys/rotate", {"target": "signing"}, {}),
        ("POST", "/v1/tokens", "/v1/tokens", {"subject": "ci-bot", "ttlSeconds": 600}, {}),
        ("POST", "/v1/apikeys", "/v1/apikeys", {"name": "shape-key", "ttlDays": 1}, {}),
        ("GET", "/v1/apikeys", "/v1/apikeys", None, {}),
        ("DELETE", "/v1/apikeys/{name}", "/v1/apikeys/shape-key", None, {}),
        ("GET", "/v1/audit", "/v1/audit?since=0&limit=10", None, {}),
        ("GET", "/v1/audit", "/v1/audit?limit=0", None, {}),
        ("GET", "/v1/audit/verify", "/v1/audit/verify", None, {}),
        ("GET", "/v1/zones", "/v1/zones", None, {}),
        ("GET", "/v1/policy/analyze", "/v1/policy/analyze", None, {}),
        ("GET", "/v1/audit/search", "/v1/audit/search?principal=root&limit=5", None, {}),
        ("POST", "/v1/principals/{name}/unlock", "/v1/principals/ci-bot/unlock", None, {}),
        ("GET", "/v1/pool", "/v1/pool", None, {}),
        ("GET", "/metrics", "/metrics", None, {}),
        ("GET", "/openapi.json", "/openapi.json", None, {}),
        ("GET", "/v1/policy", "/v1/policy", None, {"Authorization": "Bearer not.a.token"}),
    ]
    for method, template, path, body, headers in cases:
        request_schema = spec["paths"][template][method.lower()].get("requestBody", {}).get("content", {}).get(
            "application/json", {}).get("schema")
        if body is not None:
            assert request_schema is not None, f"{method} {template}: a body is sent but none is documented"
            if body.get("input") != {"name": ""}:  # that case is input the node refuses, well-formed for the API
                problems = [e.message for e in Draft202012Validator(_resolve(spec, request_schema)).iter_errors(body)]
                assert problems == [], f"{method} {template}: {problems}"
        status, answer_headers, data = call(d, method, path, body, headers)
        _check_answer(spec, method, template, status, answer_headers, data)
        sent.add((method.lower(), template))
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert sent == documented


@pytest.mark.integration
def test_issue_13_13_http_semantics(daemons: Callable[..., Daemon]) -> None:
    """Bad query values and limit=0 are 400 naming the accepted values; 405 has Allow; 401 has WWW-Authenticate;
    health is never rate-limited; a job the caller may read but not cancel is 403 (one it may not read, 404);
    no API message names a command-line flag."""
    d = _daemon(daemons, auth={"rateLimit": {"requestsPerMinute": 60, "burst": 12}})
    d.start()
    messages: list[str] = []
    for path in ("/v1/jobs?status=bogus", "/v1/jobs?limit=0", "/v1/jobs?limit=x", "/v1/jobs?all=maybe",
                 "/v1/audit?since=-1"):
        status, _, data = call(d, "GET", path)
        error = json.loads(data)["error"]
        assert (status, error["code"]) == (400, "invalid-request"), path
        messages.append(error["message"])
    assert "queued" in messages[0] and "from 1 to 500" in messages[1]
    status, headers, _ = call(d, "PUT", "/v1/jobs")
    assert status == 405 and set(headers["Allow"].split(", ")) == {"GET", "POST"}
    status, headers, data = call(d, "GET", "/v1/policy", headers={"X-API-Key": "wrong"})
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
    messages.append(json.loads(data)["error"]["message"])
    status, _, data = call(d, "POST", "/v1/policy/explain", {"request": {"node": "hello"}, "subject": "Nobody:x"})
    assert status == 400
    messages.append(json.loads(data)["error"]["message"])
    assert [call(d, "GET", "/v1/health")[0] for _ in range(30)] == [200] * 30  # far past the burst of 12
    assert 429 in [call(d, "GET", "/v1/policy")[0] for _ in range(12)]  # the limit itself holds elsewhere

    code, job = d.curl("POST", "/v1/jobs?wait=true", {"profile": "busybox-tiny", "command": ["true"]}, uid=4242)
    assert code == 200
    code, denied = d.curl("DELETE", f"/v1/jobs/{job['id']}", uid=READER_UID)
    assert code == 403 and denied["error"]["code"] == "denied"
    messages.append(denied["error"]["message"])
    assert d.curl("GET", f"/v1/jobs/{job['id']}", uid=READER_UID)[0] == 200
    assert d.curl("DELETE", f"/v1/jobs/{job['id']}", uid=4244)[0] == 404  # another tester: not even visible
    assert d.curl("DELETE", f"/v1/jobs/{job['id']}", uid=4242)[0] == 200  # its owner may
    assert not [m for m in messages if " --" in m or m.startswith("--")], messages


@pytest.mark.integration
def test_issue_13_14_fake_backend_says_so_in_health_and_warns_at_start(daemons: Callable[..., Daemon]) -> None:
    """With runtime.backend fake, /v1/health says engine: fake and the daemon logs a warning (journald priority
    4 under systemd) when it starts."""
    d = _daemon(daemons)
    d.env.update(_journal_env(d))
    d.start()
    code, health = d.curl("GET", "/v1/health")
    assert code == 200 and health["engine"] == "fake" and health["status"] == "ok"
    lines = d.log.read_text().splitlines()
    warning = [json.loads(line[3:]) for line in lines if line.startswith("<4>") and "backend is fake" in line]
    assert warning and warning[0]["level"] == "warning"


@pytest.mark.integration
def test_issue_13_15_metrics_prefix_build_info_gauges_and_content_type(daemons: Callable[..., Daemon]) -> None:
    """Every series is onexd_*, build info and state gauges are there, no _created series, and the content type
    names the exposition format's version."""
    d = _daemon(daemons)
    d.start()
    call(d, "POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "m"}})
    status, headers, data = call(d, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    text = data.decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names and all(n.startswith("onexd_") for n in names), sorted(names)
    assert not [n for n in names if n.endswith("_created")]
    for series in ("onexd_build_info{", "onexd_jobs_running 0.0", "onexd_jobs_queued 0.0",
                   "onexd_policy_degraded 0.0", 'onexd_policy_bundles{state="active"} 4.0',
                   'onexd_network_zones{mode="internal"} 1.0', "onexd_job_slots 4.0",
                   'onexd_jobs_total{status="succeeded"} 1.0'):
        assert series in text, series


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_issue_13_15_metrics_listener_serves_only_metrics_over_tcp(daemons: Callable[..., Daemon]) -> None:
    """metrics.listen on loopback: GET /metrics answers without credentials; other paths are 404, other methods
    405; without the setting no TCP port is opened."""
    port = _free_port()
    d = _daemon(daemons, metrics={"listen": f"127.0.0.1:{port}"})
    d.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200 and "onexd_build_info" in body
    assert response.getheader("Content-Type", "").startswith("text/plain; version=")
    for method, path, expected in (("GET", "/v1/health", 404), ("GET", "/v1/jobs", 404), ("POST", "/metrics", 405)):
        conn.request(method, path)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == expected, (method, path)
    conn.close()
    assert d.stop() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.integration
def test_issue_13_16_rejected_bundle_is_a_journald_warning_naming_its_problems(
        daemons: Callable[..., Daemon]) -> None:
    """A bundle rejected at start is logged at warning with its problems; under systemd (JOURNAL_STREAM is the
    log's stream) every line carries its syslog priority, so `journalctl -p warning` finds it; info lines are 6."""
    d = _daemon(daemons)
    write_bundle(d.policy_dir, "broken", [doc("Role", "r", {"permissions": ["nodes:read"],
                                                            "capabilities": ["no-such-capability"]})])
    d.env.update(_journal_env(d))
    d.start()
    lines = d.log.read_text().splitlines()
    assert lines and all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines[:3]
    rejected_lines = [line for line in lines if '"policy bundle rejected"' in line]
    assert rejected_lines and all(line.startswith("<4>") for line in rejected_lines)
    rejected = [json.loads(line[3:]) for line in rejected_lines]
    assert rejected[0]["bundle"] == "broken" and any("no-such-capability" in p for p in rejected[0]["problems"])
    assert any(line.startswith("<6>") and '"onexd ready"' in line for line in lines)


def _config(tmp_path: Path, staging: Path, **extra: Any) -> Any:
    from onexd.config import DaemonConfig

    return DaemonConfig.model_validate({
        "socket": {"path": str(tmp_path / "run" / "onexd.sock")}, "policyDir": str(tmp_path / "policies"),
        "stateDir": str(tmp_path / "state"), "runtime": {"backend": "fake"}, "secrets": {"stagingDir": str(staging)},
        **extra})


@pytest.mark.integration
def test_issue_13_18_an_unknown_socket_group_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """`socket.group` naming a group the system does not have (the example config on a host where sysusers has
    not run) stops `onexd serve` with the field named, before the state directory exists (regression)."""
    staging = tmp_path / "unused-staging"
    config = tmp_path / "onexd.yaml"
    config.write_text(json.dumps(_config(tmp_path, staging, socket={
        "path": str(tmp_path / "run" / "onexd.sock"), "group": "no-such-group-onexd"}).model_dump(mode="json")))
    onexd = str(Path(sys.executable).parent / "onexd")
    proc = subprocess.run([onexd, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "ONEXD_MASTER_KEY": "k" * 32})
    assert proc.returncode != 0 and "socket.group" in proc.stderr and "no-such-group-onexd" in proc.stderr
    assert not (tmp_path / "state").exists()


def test_issue_13_15_a_failed_start_closes_the_metrics_listener(tmp_path: Path) -> None:
    """When the API socket cannot be set up (here: its path is a regular file), the start fails with a
    ConfigError and the metrics listener it had opened is closed again, not left serving (regression)."""
    import asyncio
    import shutil
    import uuid

    from onexd.daemon import Daemon as OnexdDaemon
    from onexd.errors import ConfigError
    from tests.conftest import EXAMPLES

    port = _free_port()
    staging = Path("/dev/shm") / f"onexd-listener-{uuid.uuid4().hex[:8]}"
    shutil.copytree(EXAMPLES, tmp_path / "policies")
    config = _config(tmp_path, staging, metrics={"listen": f"127.0.0.1:{port}"})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "onexd.sock").write_text("not a socket")
    staging.mkdir(mode=0o711)
    old = os.environ.get("ONEXD_MASTER_KEY")
    os.environ["ONEXD_MASTER_KEY"] = "k" * 32
    try:
        with pytest.raises(ConfigError, match="not a socket"):
            asyncio.run(OnexdDaemon(config).run())
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if old is None:
            del os.environ["ONEXD_MASTER_KEY"]
        else:
            os.environ["ONEXD_MASTER_KEY"] = old
        shutil.rmtree(staging, ignore_errors=True)
