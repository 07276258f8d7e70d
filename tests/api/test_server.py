"""The HTTP server in-process: the composed parts served on a Unix socket, errors from the one table."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from onexd.api.server import ApiServer
from onexd.cli.client import UnixHTTPConnection
from onexd.composition import compose
from onexd.config import config_from_data
from tests.conftest import EXAMPLES


def _request(sock: Path, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    conn = UnixHTTPConnection(str(sock), timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_served_api_answers_and_maps_errors(tmp_path: Path, staging_dir: Path) -> None:
    """Public and authenticated routes answer; bad bodies and unknown jobs get their codes and a correlation id;
    stopping removes the socket."""
    shutil.copytree(EXAMPLES, tmp_path / "policies")
    config = config_from_data({"stateDir": str(tmp_path / "state"), "policyDir": str(tmp_path / "policies"),
                               "runtime": {"backend": "fake"}, "secrets": {"stagingDir": str(staging_dir)},
                               "limits": {"maxRequestBytes": 4096}}, "test")
    parts = compose(config, lambda: True)
    parts.reloader.reload("test")
    sock = tmp_path / "run" / "onexd.sock"
    server = ApiServer(parts.api, sock, 0o600, None)

    async def scenario() -> list[tuple[int, dict[str, str], Any]]:
        await server.start()
        try:
            calls = [("GET", "/version", None), ("GET", "/v1/health", None),
                     ("POST", "/v1/policy/explain", b"{not json"),
                     ("POST", "/v1/policy/explain", b"[" * 100 + b"]" * 100),
                     ("POST", "/v1/jobs", b"x" * 5000),
                     ("GET", "/v1/jobs/0123456789abcdef0123456789abcdef", None)]
            return [await asyncio.to_thread(_request, sock, m, p, b) for m, p, b in calls]
        finally:
            await server.stop()

    try:
        answers = asyncio.run(scenario())
    finally:
        parts.audit.close()
        parts.store.close()
    (version, _, body), (health, _, state) = answers[0], answers[1]
    assert version == 200 and body["apiVersion"] == "onexd/v1"
    assert health == 200 and state["policy"]["digest"] == parts.policy.state.snapshot.digest
    codes = [(status, answer["error"]["code"]) for status, _, answer in answers[2:]]
    assert codes == [(400, "invalid-json"), (400, "too-deep"), (413, "body-too-large"), (404, "not-found")]
    assert all(h["X-Correlation-Id"] == a["error"]["correlationId"] for _, h, a in answers[2:])
    assert not sock.exists()
