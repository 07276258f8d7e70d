"""Atomic file replacement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onexd.fsutil import atomic_write


def test_atomic_write_replaces_the_file_with_the_mode_asked(tmp_path: Path) -> None:
    """The target holds exactly the new bytes, with the requested mode, and no temporary file remains."""
    target = tmp_path / "state.json"
    target.write_text("old")
    atomic_write(target, b'{"new": true}', 0o600)
    assert target.read_bytes() == b'{"new": true}'
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    """If the data cannot be written, the old content stays and the temporary file is removed."""
    target = tmp_path / "state.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        atomic_write(target, "not bytes", 0o600)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_read_only_leftover_temporary_file_does_not_block_the_write(tmp_path: Path) -> None:
    """A read-only temporary file left by a crash is replaced, and the target gets the new mode."""
    leftover = tmp_path / ".config.json.tmp"
    leftover.write_text("half")
    leftover.chmod(0o444)
    atomic_write(tmp_path / "config.json", b"{}", 0o444)
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o444
    assert not leftover.exists()
