"""The Vault source never follows a redirect: X-Vault-Token must not travel to wherever a 3xx points."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onexd.secrets.sources import SecretError, VaultSecretSource


class _Server:
    def __init__(self, redirect_to: str | None) -> None:
        self.tokens: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                server.tokens.append(self.headers.get("X-Vault-Token"))
                if redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"data": {"data": {"value": "v"}}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    elsewhere = _Server(None)
    vault = _Server(elsewhere.url)
    yield vault, elsewhere
    vault.close()
    elsewhere.close()


def test_finding_10_vault_redirect_is_an_error_and_the_token_stays_home(tmp_path: Path,
                                                             servers: tuple[_Server, _Server]) -> None:
    """A Vault answering 307 yields SecretError naming the status; the redirect target never sees the token."""
    vault, elsewhere = servers
    token_file = tmp_path / "token"
    token_file.write_text("hvs.super-secret-token\n")
    source = VaultSecretSource(vault.url, "kv", token_file)
    with pytest.raises(SecretError, match="307") as caught:
        source.read("db")
    assert "super-secret" not in str(caught.value)
    assert vault.tokens == ["hvs.super-secret-token"] and elsewhere.tokens == []
    assert VaultSecretSource(elsewhere.url, "kv", token_file).read("db") == b"v"  # a plain 200 still works
