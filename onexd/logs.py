"""Structured JSON logs on stderr, one object per line, with the request's correlation id.

Callers pass fields, never free text with values in it; nothing here ever receives a secret, a token or a
secret's path (the job runner and the API only log names, ids and digests).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from onexd.timestamps import utc

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlationId"] = cid
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # the type only: messages may carry paths
            # A bug's traceback, so the correlation id a caller reports leads to the failing line: the frames
            # (file, line, function, source line) without any exception's message, which may carry a path.
            entry["traceback"] = _frames(record.exc_info[2])
        return json.dumps(entry, default=str, separators=(",", ":"))


def _frames(tb: TracebackType | None) -> list[str]:
    """The innermost 40 frames of a traceback as `file:line in function: source`."""
    return [f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in traceback.extract_tb(tb)][-40:]


def syslog_priority(levelno: int) -> int:
    """The syslog priority (3 err, 4 warning, 6 info, 7 debug) of a logging level."""
    for threshold, priority in ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6)):
        if levelno >= threshold:
            return priority
    return 7


class JournalFormatter(JsonFormatter):
    """JSON lines with the `<N>` priority prefix journald reads from a service's stream, so that
    `journalctl -p warning` finds onexd's warnings and errors (otherwise every line is logged as info)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{super().format(record)}"


def to_journal(fd: int, environ: Mapping[str, str] | None = None) -> bool:
    """True when `fd` is the journal stream systemd connected ($JOURNAL_STREAM names its device and inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    try:
        fd = sys.stderr.fileno()
    except (OSError, ValueError):  # a replaced stderr (tests) has no descriptor
        fd = -1
    handler.setFormatter(JournalFormatter() if to_journal(fd) else JsonFormatter())
    root = logging.getLogger("onexd")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
