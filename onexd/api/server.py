"""The HTTP server: the Unix socket it listens on (bound here, or passed by systemd) and aiohttp's runner.

Connections are bounded (daemon config `api`, from composition.api_server): at most maxConnections at once (one
more is answered 503 and closed), a request's line and headers must arrive within headerTimeoutSeconds of the
connection opening or of the previous answer (a stalled or idle connection is closed; bodies have their own
timeout in bodies.py, which also bounds how long the rest of a body left unread is waited for, and how long an
answer the caller does not read may stall), and a request line or header over MAX_LINE_BYTES is answered with
the error shape every other error has, never aiohttp's text page.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from onexd.api.app import build_app
from onexd.api.context import ApiContext
from onexd.config import ApiConfig
from onexd.errors import ConfigError

log = logging.getLogger("onexd.api")
MAX_LINE_BYTES = 8190
_CODES = {400: "bad-request", 408: "request-timeout", 413: "body-too-large", 414: "request-line-too-long",
          431: "headers-too-large", 500: "internal", 503: "too-many-connections"}


def handler_options(limits: ApiConfig) -> dict[str, Any]:
    """The protocol handler's options: also given to the runner, so aiohttp's own server uses the same. aiohttp's
    keep-alive timer runs from the connection opening and from each answer, and closes a connection waiting for
    a request's headers: it is the header timeout. After answering, aiohttp reads what is left of a body the
    application did not read (a 408, a route without a body) for its lingering time, 10 s unless told: the body
    timeout bounds that too. Bodies are never inflated (a compressed body is refused in bodies.py): aiohttp would
    inflate a gzip body on the event loop as it arrives, read or not."""
    return {"keepalive_timeout": limits.headerTimeoutSeconds, "lingering_time": limits.bodyTimeoutSeconds,
            "auto_decompress": False,
            "max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_LINE_BYTES, "max_headers": 128}


def error_bytes(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error answer in the API's error shape (for answers given outside the app)."""
    cid = uuid.uuid4().hex
    body = json.dumps({"error": {"code": _CODES.get(status, "bad-request"), "message": message,
                                 "correlationId": cid}}).encode()
    reason = {400: "Bad Request", 503: "Service Unavailable"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"X-Correlation-Id: {cid}\r\nConnection: close\r\n\r\n").encode() + body


class _Slots:
    """Connections being served (or refusals lingering), counted when their protocol is made: asyncio makes the
    protocols of connections accepted together before any is connected, so aiohttp's own list of connections
    would let a burst past the cap."""

    def __init__(self) -> None:
        self.taken = 0


class _Handler(web.RequestHandler):
    """aiohttp's protocol handler, answering what it refuses itself (a malformed request, an over-long request
    line or header) in the API's error shape; it gives its connection slot back when the connection is lost."""

    def __init__(self, *args: Any, slots: _Slots, stall_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots: _Slots | None = slots
        self._stall_timeout_s = stall_timeout_s
        self._stall: asyncio.TimerHandle | None = None

    # A caller that stops reading answers stalls our writes (the transport asks us to pause) and would hold its
    # connection, and the handler waiting to write, for ever: after stall_timeout_s (the body timeout) the
    # connection is aborted (a close would wait for the unread answer to be taken).
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self._loop.call_later(self._stall_timeout_s, self._abort_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall()

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _abort_stalled(self) -> None:
        self._stall = None
        if self.transport is not None:
            log.info("connection closed: the caller took no answer", extra={"seconds": self._stall_timeout_s})
            self.transport.abort()

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp's own failures go to the daemon's structured log (its logger has no handler: they were bare
        tracebacks on stderr); a body nobody read that fails to decode after the answer (a caller's `gzip` that
        is not) is the caller's fault, said in one line."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, web.RequestPayloadError):
            log.info("connection closed: a body left unread did not decode", extra={"reason": str(exc)[:200]})
        else:
            log.error("connection failed outside the application", exc_info=exc if exc is not None else True)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_stall()
        if self._slots is not None:
            self._slots.taken -= 1
            self._slots = None  # once, however often asyncio reports the loss
        super().connection_lost(exc)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # part of an answer went out: the connection is broken
            raise ConnectionError("response already started; cannot send an error answer")
        cid = uuid.uuid4().hex
        if status >= 500:
            log.error("request failed outside the application", extra={"correlationId": cid},
                      exc_info=exc)
            text = "internal error; see the daemon log for this correlation id"
        else:
            # A fixed text: aiohttp's own messages quote the refused bytes back (`bytearray(b'aaaa…')`).
            text = (f"a request line or header is over {MAX_LINE_BYTES} bytes" if isinstance(exc, LineTooLong)
                    else "malformed HTTP request")
        body = {"error": {"code": _CODES.get(status, "bad-request"), "message": text, "correlationId": cid}}
        response = web.Response(status=status, text=json.dumps(body), content_type="application/json",
                                headers={"X-Correlation-Id": cid})
        response.force_close()
        return response


MAX_LINGERING_REFUSALS = 32  # refused connections read until their caller hangs up; more are closed at once


class _Refuse(asyncio.Protocol):
    """A connection over the cap: answered 503 at once, then what the caller sent is read and dropped until it
    hangs up (at most linger_s): closing with its request unread makes the kernel reset the connection, and the
    caller (curl, onexctl) sees a reset instead of the 503. At most MAX_LINGERING_REFUSALS linger at once (the
    descriptors they hold are in the open-file room of fdlimit.py); past that a refusal closes at once."""

    def __init__(self, max_connections: int, lingering: _Slots, linger_s: float) -> None:
        self.max_connections, self.lingering, self.linger_s = max_connections, lingering, linger_s
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(error_bytes(503, f"the daemon serves at most {self.max_connections} connections at once"))
        if self.lingering.taken >= MAX_LINGERING_REFUSALS:
            transport.close()
            return
        self.lingering.taken += 1
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self.linger_s, transport.abort)
        with contextlib.suppress(OSError):  # a caller already gone: connection_lost follows
            transport.write_eof()  # the answer is complete: the caller reads it, then hangs up

    def data_received(self, data: bytes) -> None:
        pass  # the refused request: dropped

    def eof_received(self) -> bool:
        return False  # the caller is done sending: close

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._transport is not None:
            self._transport = None
            self.lingering.taken -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def protocol_factory(server: web.Server, limits: ApiConfig) -> Any:
    """Connections for server: our handler while fewer than limits.maxConnections are open, else a refusal."""
    loop = asyncio.get_running_loop()
    options = handler_options(limits)
    slots, refusals = _Slots(), _Slots()

    def make() -> asyncio.Protocol:
        if slots.taken >= limits.maxConnections:
            return _Refuse(limits.maxConnections, refusals, limits.headerTimeoutSeconds)
        slots.taken += 1
        return _Handler(server, loop=loop, slots=slots, stall_timeout_s=limits.bodyTimeoutSeconds, **options)

    return make


def socket_gid(group: str | None) -> int:
    """The socket's group id (-1: leave it); a name the system does not know is a ConfigError, checked before the
    daemon writes anything."""
    if group is None:
        return -1
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"socket.group: no group named {group!r} on this system (create it, e.g. with "
                          "systemd-sysusers, or name another)") from None


def bind_socket(path: Path, mode: int, group: str | None) -> socket.socket:
    """Listen on path with mode and group; a stale socket file is replaced, a live one refused."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"socket path {path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # stale: left by a daemon that did not stop cleanly
        else:
            raise ConfigError(f"another process is serving on {path}")
        finally:
            probe.close()
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o755)  # the socket's group must reach the socket inside it (the daemon's umask is 077)
    gid = socket_gid(group)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no window in which the socket is wider than 0600
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.listen(256)
    sock.setblocking(False)
    return sock


class ApiServer:
    """Serves the API on a socket: bound at `path` (removed again at stop) or one systemd passed (left alone)."""

    def __init__(self, ctx: ApiContext, path: Path, mode: int, group: str | None,
                 passed: socket.socket | None = None, limits: ApiConfig | None = None) -> None:
        self.ctx, self.path, self.mode, self.group, self.passed = ctx, path, mode, group, passed
        self.limits = limits or ApiConfig()  # built without a config (tests, tools): the config's defaults
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        runner = web.AppRunner(build_app(self.ctx), access_log=None, handle_signals=False,
                               **handler_options(self.limits))
        await runner.setup()
        self._runner = runner
        assert runner.server is not None
        sock = self.passed if self.passed is not None else bind_socket(self.path, self.mode, self.group)
        # As aiohttp's SockSite does, with our protocol factory (connection cap, error shape).
        self._listener = await asyncio.get_running_loop().create_unix_server(
            protocol_factory(runner.server, self.limits), sock=sock, backlog=256)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.passed is None:  # a socket systemd passed stays: it is systemd's
            self.path.unlink(missing_ok=True)
