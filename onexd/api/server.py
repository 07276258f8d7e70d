"""The HTTP server: the Unix socket it listens on (bound here, or passed by systemd) and aiohttp's runner."""

from __future__ import annotations

import grp
import os
import socket
import stat
from pathlib import Path

from aiohttp import web

from onexd.api.app import build_app
from onexd.api.context import ApiContext
from onexd.errors import ConfigError


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
                 passed: socket.socket | None = None) -> None:
        self.ctx, self.path, self.mode, self.group, self.passed = ctx, path, mode, group, passed
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(build_app(self.ctx), access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        sock = self.passed if self.passed is not None else bind_socket(self.path, self.mode, self.group)
        await web.SockSite(runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.passed is None:  # a socket systemd passed stays: it is systemd's
            self.path.unlink(missing_ok=True)
