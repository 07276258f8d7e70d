"""Shipping the trail to sinks: file, syslog (RFC 5424 over unix/udp/tcp), webhook (HTTP POST of JSON batches).

At least once: each sink has a cursor (the last seq it acknowledged), persisted after every acknowledged
batch; a failed batch is retried with exponential backoff and jitter and never skipped, so a receiver sees
every seq and can de-duplicate by it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from onexd.audit.trail import AuditLog
from onexd.config import AuditSink

log = logging.getLogger("onexd.audit")
BACKOFF_BASE_S, BACKOFF_MAX_S = 1.0, 300.0


class Sink(Protocol):
    name: str

    def send(self, events: list[dict[str, Any]]) -> None:
        """Deliver a batch or raise: a batch that raises is sent again later."""


@dataclass
class FileSink:
    name: str
    path: Path

    def send(self, events: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in events))
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class WebhookSink:
    name: str
    url: str
    timeout_s: float = 10.0

    def send(self, events: list[dict[str, Any]]) -> None:
        body = json.dumps({"sink": self.name, "events": events}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",  # noqa: S310 - URL from config
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise OSError(f"webhook answered {response.status}")


def rfc5424(event: dict[str, Any], hostname: str, app: str = "onexd") -> bytes:
    """One RFC 5424 message: PRI 110 (facility security 13, severity info 6; warning for failures)."""
    severity = 6 if event.get("outcome") in (None, "success", "allowed") else 4
    pri = 13 * 8 + severity
    ts = str(event.get("ts") or datetime.now(UTC).isoformat())
    sd = (f'[onexd@32473 seq="{event["seq"]}" type="{_sd(event.get("type"))}" '
          f'outcome="{_sd(event.get("outcome"))}" hash="{event.get("hash", "")}"]')
    msg = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return f"<{pri}>1 {ts} {hostname} {app} {os.getpid()} {_sd(event.get('type'))} {sd} {msg}".encode()


def _sd(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@dataclass
class SyslogSink:
    name: str
    address: str  # unix:///dev/log, udp://host:port, tcp://host:port

    def send(self, events: list[dict[str, Any]]) -> None:
        host = socket.gethostname()
        scheme, _, rest = self.address.partition("://")
        if scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.connect(rest)
                for e in events:
                    sock.send(rfc5424(e, host))
            finally:
                sock.close()
            return
        hostname, _, port = rest.rpartition(":")
        kind = socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM
        with socket.create_connection((hostname, int(port)), timeout=10) if kind == socket.SOCK_STREAM else \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for e in events:
                message = rfc5424(e, host)
                if kind == socket.SOCK_STREAM:
                    sock.sendall(f"{len(message)} ".encode() + message)  # RFC 6587 octet counting
                else:
                    sock.sendto(message, (hostname, int(port)))


def make_sink(config: AuditSink) -> Sink:
    if config.type == "file":
        if not config.path:
            raise ValueError(f"audit sink {config.name}: type file needs `path`")
        return FileSink(config.name, Path(config.path))
    if config.type == "webhook":
        if not config.url:
            raise ValueError(f"audit sink {config.name}: type webhook needs `url`")
        return WebhookSink(config.name, config.url)
    if not config.address:
        raise ValueError(f"audit sink {config.name}: type syslog needs `address`")
    return SyslogSink(config.name, config.address)


@dataclass
class _State:
    cursor: int = 0
    failures: int = 0
    next_try: float = 0.0
    last_error: str = ""


class Shipper:
    def __init__(self, trail: AuditLog, sinks: list[Sink], cursor_file: Path, batch_size: int = 500,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.trail, self.sinks, self.cursor_file, self.batch_size = trail, sinks, cursor_file, batch_size
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._lock = threading.Lock()
        saved = json.loads(cursor_file.read_text()) if cursor_file.exists() else {}
        self.state = {s.name: _State(cursor=int(saved.get(s.name, 0))) for s in sinks}

    def _save(self) -> None:
        tmp = self.cursor_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: s.cursor for n, s in self.state.items()}))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(self.cursor_file)

    def ship(self) -> dict[str, int]:
        """One round: each sink that is not backing off gets batches until it is caught up or fails."""
        with self._lock:
            sent: dict[str, int] = {}
            for sink in self.sinks:
                st = self.state[sink.name]
                if self.clock() < st.next_try:
                    continue
                sent[sink.name] = 0
                while True:
                    batch = self.trail.read(st.cursor, self.batch_size)
                    if not batch:
                        break
                    try:
                        sink.send(batch)
                    except Exception as exc:
                        st.failures += 1
                        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (st.failures - 1))
                        st.next_try = self.clock() + delay * self.rng.uniform(0.5, 1.5)
                        st.last_error = type(exc).__name__
                        retry_s = round(st.next_try - self.clock(), 1)
                        log.warning("audit shipping failed",
                                    extra={"sink": sink.name, "why": st.last_error, "retryInSeconds": retry_s})
                        break
                    st.cursor, st.failures, st.last_error = batch[-1]["seq"], 0, ""
                    sent[sink.name] += len(batch)
                    self._save()
            return sent

    def lag(self) -> dict[str, int]:
        return {n: max(0, self.trail.last_seq - s.cursor) for n, s in self.state.items()}
