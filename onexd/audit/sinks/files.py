"""The file sink: JSON Lines appended and fsynced, one line per event."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onexd.audit.sinks.base import SendResult


@dataclass
class FileSink:
    name: str
    path: Path

    def send(self, events: list[dict[str, Any]]) -> SendResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in events))
            os.fsync(fd)
        finally:
            os.close(fd)
        return SendResult(len(events))
