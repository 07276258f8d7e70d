"""systemd integration without a dependency: sd_notify, socket activation, the unit's directories.

Everything here is a no-op when systemd did not start us (no NOTIFY_SOCKET, no LISTEN_FDS).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

SD_LISTEN_FDS_START = 3


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify datagram (READY=1, STATUS=..., ...). True when sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall(message.encode())
        return True
    except OSError:
        return False
    finally:
        sock.close()


def reloading() -> str:
    """RELOADING=1 with the CLOCK_MONOTONIC timestamp systemd 253+ wants (Type=notify-reload)."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of WATCHDOG_USEC, when the watchdog is meant for this process."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


def listen_socket(environ: Mapping[str, str] | None = None) -> socket.socket | None:
    """The Unix stream socket systemd passed (LISTEN_FDS/LISTEN_PID), or None."""
    env = os.environ if environ is None else environ
    count, pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    if not count or int(count) < 1 or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise OSError("the socket passed by systemd is not a Unix stream socket")
    sock.setblocking(False)
    for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):  # not inherited by anything we start
        os.environ.pop(key, None)
    return sock


def directory(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """$RUNTIME_DIRECTORY, $STATE_DIRECTORY, ... (the first, when systemd lists several)."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    return Path(value.split(":")[0]) if value else None
