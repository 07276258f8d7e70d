"""Tokens, API keys, key rotation and secrets through the daemon, as an operator uses them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import docker
import pytest
import yaml

from onexd.crypto import jwt_sign
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key
from tests.conftest import doc, write_bundle
from tests.daemon.conftest import Daemon

ONEXCTL = str(Path(sys.executable).parent / "onexctl")
ONEXD = str(Path(sys.executable).parent / "onexd")


def _curl(d: Daemon, path: str, header: str | None = None, uid: int | None = None, method: str = "GET",
          body: Any = None, headers: bool = False) -> tuple[int, Any, str]:
    cmd = ["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", str(d.socket), "-X", method]
    if headers:  # response headers on stderr (as root only: another uid cannot reopen our pipe)
        cmd[1:1] = ["-D", "/dev/stderr"]
    if header:
        cmd += ["-H", header]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    cmd.append(f"http://onexd{path}")
    if uid is not None:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--groups=4243", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    text, _, code = proc.stdout.rpartition("\n")
    return int(code), json.loads(text) if text.strip() else None, proc.stderr


def _ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ONEXCTL, "--socket", str(d.socket), *args], capture_output=True, text=True, check=False,
                          timeout=60)


def _kids(d: Daemon) -> set[str]:
    return {k["kid"] for k in _curl(d, "/v1/keys/jwks")[1]["keys"]}


def _active(d: Daemon) -> str:
    return next(k["kid"] for k in json.loads(_ctl(d, "-o", "json", "keys", "list").stdout)["keys"]
                if k["state"] == "active")


@pytest.mark.integration
def test_token_works_as_its_subject_from_any_uid(daemons: Callable[..., Daemon]) -> None:
    """Root issues a token for ci-bot; an unbound uid presenting it acts as Token:ci-bot (and is allowed)."""
    d = daemons(backend="fake")
    d.start()
    token = _ctl(d, "token", "issue", "--subject", "ci-bot", "--ttl", "10m").stdout.strip()
    code, record, _ = _curl(d, "/v1/jobs?wait=true", f"Authorization: Bearer {token}", uid=4299, method="POST",
                            body={"node": "hello", "input": {"name": "t"}})
    assert code == 200 and record["principal"] == "Token:ci-bot"
    assert _curl(d, "/v1/jobs?wait=true", uid=4299, method="POST", body={"node": "hello", "input": {}})[0] == 403


@pytest.mark.integration
def test_every_bad_token_is_401(daemons: Callable[..., Daemon]) -> None:
    """Expired, early, wrong aud/iss, unknown kid, alg none, HS256 with the public key, tampered: all 401."""
    d = daemons(backend="fake")
    d.start()
    store = Keystore(d.state_dir / "keys" / "keystore.json", load_master_key(d.state_dir))
    kid, key = store.signing_key()
    now = int(time.time())
    base = {"iss": "onexd", "aud": "onexd", "sub": "ci-bot", "iat": now, "exp": now + 300, "jti": "j1"}
    good = jwt_sign(base, key, kid)
    assert _curl(d, "/v1/health", f"Authorization: Bearer {good}")[0] == 200
    import base64
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    public = next(e.public_pem for e in store.entries() if e.kid == kid).encode()
    head = b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    body = b64(json.dumps(base).encode())
    hs256 = f"{head}.{body}." + b64(hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest())
    none = b64(json.dumps({"alg": "none", "kid": kid}).encode()) + "." + body + "."
    bad = [jwt_sign({**base, "exp": now - 100}, key, kid), jwt_sign({**base, "nbf": now + 600}, key, kid),
           jwt_sign({**base, "aud": "elsewhere"}, key, kid), jwt_sign({**base, "iss": "mallory"}, key, kid),
           jwt_sign(base, key, "ffffffffffffffff"), none, hs256, good[:-6] + "AAAAAA"]
    for token in bad:
        code, answer, _ = _curl(d, "/v1/health", f"Authorization: Bearer {token}")
        assert code == 401 and answer["error"]["code"] == "invalid-token", answer
        assert token not in json.dumps(answer)


@pytest.mark.integration
def test_rotation_keeps_old_tokens_valid_through_grace(daemons: Callable[..., Daemon]) -> None:
    """After `onexctl keys rotate` the JWKS has old and new keys; an old token works until grace ends, then 401."""
    d = daemons(backend="fake", extra={"auth": {"tokens": {"ttlSeconds": 4}}, "rotation": {"graceSeconds": 4}})
    d.start()
    token = _ctl(d, "token", "issue", "--subject", "ci-bot").stdout.strip()
    before = _active(d)
    assert _ctl(d, "keys", "rotate").returncode == 0
    after = _active(d)
    assert after != before and {before, after} <= _kids(d)
    assert _curl(d, "/v1/health", f"Authorization: Bearer {token}")[0] == 200
    deadline = time.monotonic() + 15
    while _curl(d, "/v1/health", f"Authorization: Bearer {token}")[0] == 200:
        assert time.monotonic() < deadline, "the old token kept working past its grace"
        time.sleep(0.25)
    assert _curl(d, "/v1/health", f"Authorization: Bearer {token}")[0] == 401


@pytest.mark.integration
def test_short_interval_rotates_by_itself_and_overdue_rotation_runs_at_start(daemons: Callable[..., Daemon]
                                                                              ) -> None:
    """With a 2 s interval the active key changes without anyone asking; after a stop longer than the interval,
    the next start rotates at once."""
    d = daemons(backend="fake", extra={"rotation": {"signingKeysEverySeconds": 2},
                                       "auth": {"tokens": {"ttlSeconds": 2}}})
    d.start()
    first = _active(d)
    deadline = time.monotonic() + 10
    while _active(d) == first:
        assert time.monotonic() < deadline, "no scheduled rotation"
        time.sleep(0.2)
    config = yaml.safe_load(d.config.read_text())
    config["rotation"]["signingKeysEverySeconds"] = 3
    d.config.write_text(yaml.safe_dump(config))
    d.stop()
    store = Keystore(d.state_dir / "keys" / "keystore.json", load_master_key(d.state_dir))
    before_restart = store.signing_key()[0]
    time.sleep(3.2)
    d.start()
    assert _active(d) != before_restart


@pytest.mark.integration
def test_api_key_lifecycle_and_no_plaintext_on_disk(daemons: Callable[..., Daemon]) -> None:
    """A new key works (as ApiKey:NAME), is stored only hashed, and is refused once revoked."""
    d = daemons(backend="fake")
    d.start()
    created = json.loads(_ctl(d, "-o", "json", "apikey", "create", "deploy-bot", "--ttl", "30d").stdout)
    key = created["key"]
    code, record, _ = _curl(d, "/v1/jobs?wait=true", f"X-API-Key: {key}", uid=4299, method="POST",
                            body={"node": "hello", "input": {"name": "k"}})
    assert code == 200 and record["principal"] == "ApiKey:deploy-bot"
    listed = json.loads(_ctl(d, "-o", "json", "apikey", "list").stdout)["apikeys"]
    assert [k["name"] for k in listed] == ["deploy-bot"] and key not in json.dumps(listed)
    secret_part = key.split("_", 2)[2]
    for path in d.state_dir.rglob("*"):
        if path.is_file():
            assert secret_part.encode() not in path.read_bytes(), path
    assert _ctl(d, "apikey", "revoke", "deploy-bot").returncode == 0
    code, answer, _ = _curl(d, "/v1/health", f"X-API-Key: {key}")
    assert code == 401 and answer["error"]["code"] == "invalid-api-key"


@pytest.mark.integration
def test_expiring_api_key_carries_a_warning(daemons: Callable[..., Daemon]) -> None:
    """Inside the warning window, responses tell the caller to rotate the key."""
    d = daemons(backend="fake", extra={"auth": {"apiKeys": {"defaultTTLDays": 5, "warnDays": 14}}})
    d.start()
    key = json.loads(_ctl(d, "-o", "json", "apikey", "create", "soon").stdout)["key"]
    code, _, headers = _curl(d, "/v1/health", f"X-API-Key: {key}", headers=True)
    assert code == 200 and "X-Onexd-Warning: API key soon expires in" in headers


# --- secrets: a canary per source type ------------------------------------------------------------------


class _Vault(BaseHTTPRequestHandler):
    token = ""
    data: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        prefix = "/v1/secret/data/"
        if self.headers.get("X-Vault-Token") != self.token or not self.path.startswith(prefix):
            self.send_response(403)
            self.end_headers()
            return
        value = self.data.get(self.path[len(prefix):])
        body = json.dumps({"data": {"data": {"value": value}, "metadata": {"version": 1}}} if value else {})
        self.send_response(200 if value else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def vault() -> Iterator[tuple[str, type[_Vault]]]:
    """A tiny KV v2 server on loopback, with a token of its own."""
    handler = type("Vault", (_Vault,), {"token": uuid.uuid4().hex, "data": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _canary_bundle(d: Daemon, files_dir: Path, vault_url: str, token_file: Path) -> None:
    sources = [doc("SecretSource", "c-env", {"type": "env", "prefix": "CANARY_"}),
               doc("SecretSource", "c-file", {"type": "file", "path": str(files_dir)}),
               doc("SecretSource", "c-enc", {"type": "encrypted", "cacheTTLSeconds": 0}),
               doc("SecretSource", "c-vault", {"type": "vault", "address": vault_url, "mount": "secret",
                                               "tokenFile": str(token_file)})]
    nodes, secrets = [], []
    for kind in ("env", "file", "enc", "vault"):
        secrets.append(doc("Secret", f"canary-{kind}", {"source": f"c-{kind}", "key": "CANARY"}))
        script = (f"sha256sum /run/secrets/canary-{kind} | cut -d' ' -f1; cat /run/secrets/canary-{kind}; echo; "
                  f"ls -ln /run/secrets; sleep 2")
        nodes.append(doc("Node", f"canary-{kind}", {"version": "1.0.0", "profile": "busybox-tiny",
                                                     "command": ["sh", "-c", script], "secrets": [f"canary-{kind}"]}))
    write_bundle(d.policy_dir, "canary", [
        *sources, *secrets, *nodes,
        doc("Capability", "run-canaries", {"nodes": ["canary-*"], "profiles": ["busybox-tiny"],
                                           "secrets": [f"canary-{k}" for k in ("env", "file", "enc", "vault")]}),
        doc("Role", "canary-runner", {"permissions": ["nodes:execute", "jobs:read"], "capabilities": ["run-canaries"]}),
        doc("RoleBinding", "canaries", {"roles": ["canary-runner"],
                                        "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])


@pytest.mark.docker
@pytest.mark.parametrize("kind", ["env", "file", "enc", "vault"])
def test_secret_canary_reaches_only_the_job(daemons: Callable[..., Daemon], tmp_path: Path, kind: str,
                                            vault: tuple[str, type[_Vault]]) -> None:
    """A fresh value reaches the job as /run/secrets/<name> (0400, the job's uid): its sha256 matches, the value
    printed is masked, `docker inspect` of the running job shows no trace, and afterwards it is nowhere: not
    in the daemon's log, the state directory, API answers, another job's container or the staging directory."""
    value = f"canary-{uuid.uuid4().hex}"
    url, handler = vault
    handler.data["CANARY"] = value
    files_dir = tmp_path / "file-source"
    files_dir.mkdir()
    (files_dir / "CANARY").write_text(value)
    token_file = tmp_path / "vault-token"
    token_file.write_text(handler.token)
    d = daemons()
    d.env["CANARY_CANARY"] = value
    _canary_bundle(d, files_dir, url, token_file)
    if kind == "enc":
        # Offline commands never create key material: the store is written under the key the daemon will use.
        d.env["ONEXD_MASTER_KEY"] = uuid.uuid4().hex + uuid.uuid4().hex
        d.state_dir.mkdir(parents=True, mode=0o700)
        subprocess.run([ONEXD, "secret", "set", "c-enc", "CANARY", "--state-dir", str(d.state_dir)],
                       input=value.encode(), check=True, capture_output=True, env={**os.environ, **d.env})
    d.start()
    code, job = _curl(d, "/v1/jobs", method="POST", body={"node": f"canary-{kind}", "input": None})[:2]
    assert code == 202, job
    neighbour = _curl(d, "/v1/jobs", method="POST",
                      body={"profile": "busybox-tiny", "command": ["sh", "-c", "ls /run/secrets 2>&1; sleep 2"]})[1]
    client = docker.APIClient(version="auto")
    try:
        deadline = time.monotonic() + 20
        while len(running := client.containers(filters={"label": "onexd.managed=true"})) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for c in running:
            assert value not in json.dumps(client.inspect_container(c["Id"]))
    finally:
        client.close()
    record = _wait(d, job["id"])
    other = _wait(d, neighbour["id"])
    lines = record["stdout"].splitlines()
    assert record["status"] == "succeeded", record
    assert lines[0] == hashlib.sha256(value.encode()).hexdigest()
    assert lines[1] == "***"
    assert "-r-------    1 1000     1000" in record["stdout"] or "-r--------" in record["stdout"]
    assert "No such file" in other["stdout"]
    answers = [json.dumps(_curl(d, p)[1]) for p in (f"/v1/jobs/{job['id']}", "/v1/jobs?all=true", "/v1/policy")]
    answers.append(subprocess.run(["curl", "-s", "--unix-socket", str(d.socket),
                                   f"http://onexd/v1/jobs/{job['id']}/logs"], capture_output=True, text=True).stdout)
    assert all(value not in a for a in answers)
    d.stop()
    assert value not in d.log.read_text()
    for path in d.state_dir.rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path
    staging = Path(yaml.safe_load(d.config.read_text())["secrets"]["stagingDir"])
    assert not staging.exists() or list(staging.iterdir()) == []


def _wait(d: Daemon, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        record = _curl(d, f"/v1/jobs/{job_id}")[1]
        if record["status"] not in ("queued", "running"):
            return dict(record)
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.integration
def test_missing_secret_fails_the_job_naming_it_not_its_value(daemons: Callable[..., Daemon], tmp_path: Path,
                                                              vault: tuple[str, type[_Vault]]) -> None:
    """An unset secret: the job ends `error`, the reason names the secret and source, nothing ran."""
    url, _handler = vault
    token_file = tmp_path / "vault-token"
    token_file.write_text("wrong-token")
    d = daemons(backend="fake")
    _canary_bundle(d, tmp_path, url, token_file)
    d.start()
    record = _curl(d, "/v1/jobs?wait=true", method="POST", body={"node": "canary-vault", "input": None})[1]
    assert record["status"] == "error" and "canary-vault" in record["reason"] and "403" in record["reason"]
