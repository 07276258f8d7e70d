"""The syslog sink's transports: unix datagrams (/dev/log), UDP (best-effort), TCP and TLS (RFC 5425)."""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from onexd.addresses import Endpoint
from onexd.audit.sinks.base import DeliveryError, SendResult
from onexd.audit.sinks.rfc5424 import SyslogFormat, format_event, frame


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or type(exc).__name__}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    name = errno.errorcode.get(exc.errno or 0)
    return f"{name}: {exc.strerror}" if name else type(exc).__name__


@dataclass
class SyslogSink:
    name: str
    endpoint: Endpoint
    format: SyslogFormat
    framing: Literal["octet-counting", "lf"] = "octet-counting"
    timeout_s: float = 10.0
    context: ssl.SSLContext | None = field(default=None, repr=False)
    server_name: str | None = None

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        messages = [format_event(e, self.format) for e in events]
        try:
            if self.endpoint.scheme == "unix":
                return self._unix(messages)
            if self.endpoint.scheme == "udp":
                return self._udp(messages)
            return self._stream(messages)
        except OSError as exc:
            raise DeliveryError(f"{self.endpoint.scheme} {self.endpoint.path or self.endpoint.netloc}: "
                                f"{_why(exc)}") from None

    def _unix(self, messages: list[bytes]) -> SendResult:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout_s)
            sock.connect(self.endpoint.path)
            for message in messages:
                sock.send(message)
        return SendResult(len(messages))

    def _udp(self, messages: list[bytes]) -> SendResult:
        """Best-effort: a datagram the kernel refuses is counted as dropped and never retried, so one bad event
        (or a receiver that is down) can never wedge the sink."""
        family, kind, proto, _, where = socket.getaddrinfo(self.endpoint.host, self.endpoint.port,
                                                           type=socket.SOCK_DGRAM)[0]
        sent = dropped = 0
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(self.timeout_s)
            for message in messages:
                try:
                    sock.sendto(message, where)
                    sent += 1
                except OSError:
                    dropped += 1
        return SendResult(sent, dropped)

    def _stream(self, messages: list[bytes]) -> SendResult:
        """Send the batch, then close our side and wait for the receiver to close its own: a receiver closes
        after it has read everything before our end of stream, so a batch counts as delivered only then (an
        abrupt close can drop what sat in the receiver's buffers, which TLS receivers do)."""
        payload = b"".join(frame(m, self.framing) for m in messages)
        with socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.timeout_s) as raw:
            if self.endpoint.scheme == "tls":
                assert self.context is not None
                with self.context.wrap_socket(raw, server_hostname=self.server_name or self.endpoint.host) as sock:
                    sock.sendall(payload)
                    try:
                        sock.unwrap()  # our close_notify, then the receiver's
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        return SendResult(len(messages))  # the receiver ended the session after reading ours
                    sock.shutdown(socket.SHUT_WR)
                    _await_close(sock)
            else:
                raw.sendall(payload)
                raw.shutdown(socket.SHUT_WR)
                _await_close(raw)
        return SendResult(len(messages))


def _await_close(sock: socket.socket) -> None:
    """Read until the peer closes (bounded by the socket's timeout); syslog receivers never answer, so any
    byte is discarded."""
    while sock.recv(4096):
        pass
