"""The trail's writer against short writes (a filling disk writes part of a record without an error)."""

from __future__ import annotations

import pytest

from onexd.audit.trail import _write_all


class _ShortFile:
    """Takes at most `step` bytes per write, and nothing once `capacity` bytes are written."""

    def __init__(self, step: int, capacity: int) -> None:
        self.step, self.capacity, self.data = step, capacity, b""

    def write(self, data: memoryview) -> int:
        n = min(self.step, len(data), self.capacity - len(self.data))
        self.data += bytes(data[:n])
        return n


def test_short_writes_are_completed() -> None:
    """A record written 3 bytes at a time arrives whole."""
    f = _ShortFile(step=3, capacity=1000)
    _write_all(f, b'{"seq":1}\n')
    assert f.data == b'{"seq":1}\n'


def test_a_write_that_makes_no_progress_is_an_error() -> None:
    """A full disk (a write of 0 bytes) raises OSError, so the writer's repair cuts the partial batch."""
    f = _ShortFile(step=4, capacity=6)
    with pytest.raises(OSError, match="short write"):
        _write_all(f, b'{"seq":1}\n')
