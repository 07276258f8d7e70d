"""Structured JSON logs on stderr, one object per line, with the request's correlation id.

Callers pass fields, never free text with values in it; nothing here ever receives a secret, a token or a
secret's path (the job runner and the API only log names, ids and digests).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
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
        return json.dumps(entry, default=str, separators=(",", ":"))


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("onexd")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
