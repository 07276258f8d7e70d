"""Peer credentials of a Unix-socket caller, from the kernel (SO_PEERCRED): not forgeable by the client."""

from __future__ import annotations

import socket
import struct

from onexd.errors import AuthenticationError

PEERCRED = struct.Struct("3i")


def peer_credentials(sock: socket.socket | None) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    if sock is None or sock.family != socket.AF_UNIX:
        raise AuthenticationError("this API is only served on a Unix socket", "no-peer-credentials")
    pid, uid, gid = PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
    return pid, uid, gid
