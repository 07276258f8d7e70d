"""The webhook sink: one HTTP POST of a JSON batch per call, over http.client so that nothing follows a
redirect: a 3xx (like any non-2xx) is a failure, retried and counted. The Authorization header value is read
from a file (or a systemd credential) at each send and never logged."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onexd.addresses import Endpoint
from onexd.audit.sinks.base import DeliveryError, SendResult

MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class HeaderFile:
    """A header value kept in a file, read at each use (rotation needs no restart); repr never shows it."""

    path: Path

    def read(self) -> str:
        try:
            value = self.path.read_text().strip()
        except OSError as exc:
            raise DeliveryError(f"cannot read the authorization file {self.path}: {exc.strerror}") from None
        if not value or any(c in value for c in "\r\n"):
            raise DeliveryError(f"the authorization file {self.path} is empty or holds several lines")
        return value


def idempotency_key(sink: str, events: list[dict[str, Any]]) -> str:
    """The same batch always carries the same key, so a receiver can drop a re-sent batch whole."""
    return f"onexd-{sink}-{events[0]['seq']}-{events[-1]['seq']}"


@dataclass
class WebhookSink:
    name: str
    endpoint: Endpoint
    timeout_s: float = 10.0
    context: ssl.SSLContext | None = field(default=None, repr=False)
    authorization: HeaderFile | None = None
    server_name: str | None = None

    def headers(self, events: list[dict[str, Any]]) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key(self.name, events),
                   "X-Onexd-Seq-Range": f"{events[0]['seq']}-{events[-1]['seq']}"}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization.read()
        return headers

    def _connection(self) -> http.client.HTTPConnection:
        if self.endpoint.scheme == "https":
            context = self.context or ssl.create_default_context()
            if self.server_name:  # verify against the configured name, connect to the address's host
                return _NamedHTTPSConnection(self.endpoint.host, self.endpoint.port, timeout=self.timeout_s,
                                             context=context, server_name=self.server_name)
            return http.client.HTTPSConnection(self.endpoint.host, self.endpoint.port, timeout=self.timeout_s,
                                               context=context)
        return http.client.HTTPConnection(self.endpoint.host, self.endpoint.port, timeout=self.timeout_s)

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        body = json.dumps({"sink": self.name, "events": events}).encode()
        headers = self.headers(events)
        connection = self._connection()
        try:
            connection.request("POST", self.endpoint.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            status = response.status
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"webhook TLS verification failed: {exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from None
        finally:
            connection.close()
        if 300 <= status < 400:
            raise DeliveryError(f"webhook answered {status}: redirects are not followed")
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered {status}")
        return SendResult(len(events))


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._ctx, self._server_name = context, server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._server_name)
