"""The engine's attach stream: demultiplexing a job's output within its limit, and closing the connection."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Any

from onexd.runtime.base import OutputSink


class OutputReader(threading.Thread):
    """Demultiplexes the attach stream, keeping at most `limit` bytes of stdout+stderr, draining the rest."""

    def __init__(self, sock: socket.socket, limit: int, on_output: OutputSink | None = None) -> None:
        super().__init__(name="onexd-output", daemon=True)
        self.sock, self.limit, self.on_output = sock, limit, on_output
        self.out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self.kept = 0
        self.seen = 0  # every byte the job wrote, kept or cut (usage.outputBytes)

    def _read_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def run(self) -> None:
        try:
            while True:
                header = self._read_exactly(8)
                stream, size = header[0], struct.unpack(">I", header[4:])[0]
                remaining = size
                while remaining:
                    chunk = self.sock.recv(min(remaining, 65536))
                    if not chunk:
                        raise EOFError
                    remaining -= len(chunk)
                    self.seen += len(chunk)
                    room = self.limit - self.kept
                    if len(chunk) > room:
                        self.truncated = True
                        chunk = chunk[:max(room, 0)]
                    if chunk and stream in self.out:
                        self.out[stream] += chunk
                        self.kept += len(chunk)
                        if self.on_output is not None:
                            self.on_output(stream, chunk)
        except (EOFError, OSError):
            return


def close_attach(attached: Any) -> None:
    """Close the hijacked attach connection in the order that leaves no half-closed object for the GC:
    the HTTP response first (it flushes through the socket), then the file object, then the socket."""
    for closeable in (getattr(attached, "_response", None), attached, getattr(attached, "_sock", None)):
        if closeable is not None:
            with contextlib.suppress(Exception):
                closeable.close()
