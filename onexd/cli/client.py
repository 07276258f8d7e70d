"""onexctl's client of the socket API (stdlib HTTP over the Unix socket) and the global options that configure
it: the socket, the credentials (a bearer token or an API key, else the socket peer) and the request timeout."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from onexd.cli.options import GlobalOption
from onexd.errors import ApiFailure, DaemonUnreachable, UsageError

DEFAULT_SOCKET = "/run/onexd/onexd.sock"
DEFAULT_TIMEOUT = 30.0  # seconds per request; waiting commands (--wait, -f) wait as long as it takes


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("onexd", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Client:
    """One request per connection. Credentials: a bearer token or an API key, else the socket peer (uid/gid)."""

    def __init__(self, socket_path: str, token: str | None = None, api_key: str | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT) -> None:
        if token and api_key:
            raise UsageError("give --token (ONEXD_TOKEN) or --api-key (ONEXD_API_KEY), not both")
        self.socket_path, self.timeout = socket_path, timeout
        self.headers: dict[str, str] = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token.strip()}"
        elif api_key:
            self.headers["X-API-Key"] = api_key.strip()

    def _open(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> http.client.HTTPResponse:
        wait = self.timeout if timeout is None else timeout
        conn = UnixHTTPConnection(self.socket_path, timeout=wait or None)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {**self.headers, **({"Content-Type": "application/json"} if payload else {})}
            conn.request(method, path, body=payload, headers=headers)
            return conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(f"cannot connect to {self.socket_path}: {exc.strerror}; is onexd running? "
                                    "(--socket or ONEXD_SOCKET)") from None
        except PermissionError:
            raise DaemonUnreachable(f"permission denied on {self.socket_path}: join the socket's group") from None
        except TimeoutError:
            raise DaemonUnreachable(f"no answer from {self.socket_path} within {wait:g} s "
                                    "(--request-timeout or ONEXD_REQUEST_TIMEOUT; 0 waits forever)") from None

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        response = self._open(method, path, body, timeout)
        try:
            data = response.read()
        except TimeoutError:
            raise DaemonUnreachable(f"no answer from {self.socket_path} in time (--request-timeout)") from None
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"error": {"message": data.decode(errors="replace")[:200]}}
        if response.status >= 400:
            raise ApiFailure(response.status, parsed)
        return parsed

    def stream(self, path: str, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        response = self._open("GET", path, timeout=timeout)
        if response.status >= 400:
            raise ApiFailure(response.status, json.loads(response.read() or b"{}"))
        for line in response:
            if line.strip():
                yield json.loads(line)


def client_for(args: argparse.Namespace, waits: bool = False) -> Client:
    """A client from the global options; a command that waits (--wait, -f) has no timeout unless one is given."""
    timeout = args.request_timeout
    if timeout is None:
        timeout = 0.0 if waits else DEFAULT_TIMEOUT
    return Client(args.socket, token=args.token, api_key=args.api_key, timeout=timeout)


def seconds(text: str) -> float:
    """A non-negative number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be 0 (no limit) or more")
    return value


def _env_seconds(name: str) -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return seconds(value)
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(f"onexctl: {name}: {exc}") from None


def global_options() -> list[GlobalOption]:
    """The options every onexctl command takes, before or after the subcommand (see onexd.cli.options)."""
    env = os.environ
    return [
        GlobalOption(("--socket",), {"default": env.get("ONEXD_SOCKET", DEFAULT_SOCKET), "metavar": "PATH",
                                     "help": f"the daemon's socket (ONEXD_SOCKET; default {DEFAULT_SOCKET})"}),
        GlobalOption(("-o", "--output"), {"choices": ("table", "json", "yaml"), "default": "table",
                                          "help": "output format (default table)"}),
        GlobalOption(("--token",), {"default": env.get("ONEXD_TOKEN") or None, "metavar": "JWT",
                                    "help": "authenticate with this bearer token (ONEXD_TOKEN)"}),
        GlobalOption(("--api-key",), {"default": env.get("ONEXD_API_KEY") or None, "metavar": "KEY",
                                      "help": "authenticate with this API key (ONEXD_API_KEY)"}),
        GlobalOption(("--request-timeout",), {"type": seconds, "default": _env_seconds("ONEXD_REQUEST_TIMEOUT"),
                                              "metavar": "SECONDS",
                                              "help": f"give up on an answer after SECONDS (ONEXD_REQUEST_TIMEOUT;"
                                                      f" default {DEFAULT_TIMEOUT:g}, none for --wait and -f; "
                                                      "0 waits forever)"}),
    ]
