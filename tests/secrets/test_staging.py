"""Secret staging: memory-backed only, owned by us, and masking of values (also cut-off ones)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from onexd.errors import ConfigError
from onexd.secrets.sources import EnvSecretSource, FileSecretSource, SecretError, source_for
from onexd.secrets.staging import check_staging_dir, default_staging_dir, filesystem_type, mask


def test_disk_backed_staging_dir_is_refused(tmp_path: Path) -> None:
    """A staging directory on a disk filesystem is a configuration error naming the filesystem."""
    if filesystem_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.fail("the test needs a disk-backed tmp_path")
    with pytest.raises(ConfigError, match="not tmpfs/ramfs"):
        check_staging_dir(tmp_path / "secrets")


def test_planted_symlink_is_refused() -> None:
    """A link planted in /dev/shm (world-writable) is not followed."""
    link = Path("/dev/shm") / f"onexd-link-{uuid.uuid4().hex[:8]}"
    link.symlink_to("/tmp")
    try:
        with pytest.raises(ConfigError, match="not a directory owned"):
            check_staging_dir(link)
    finally:
        link.unlink()


def test_default_staging_dir_is_memory_backed() -> None:
    """Whatever the default resolves to here, it is on tmpfs/ramfs."""
    path = default_staging_dir({})
    anchor = path
    while not anchor.exists():
        anchor = anchor.parent
    assert filesystem_type(anchor) in ("tmpfs", "ramfs")


@pytest.mark.parametrize(("output", "values", "expected"), [
    (b"a SECRET b SECRET", [b"SECRET"], b"a *** b ***"),
    (b"prefix SECR", [b"SECRET"], b"prefix ***"),
    (b"prefix SE", [b"SECRET"], b"prefix SE"),  # too short to be told from ordinary text
    (b"xx LONGSECRET", [b"SECRET", b"LONGSECRET"], b"xx ***"),
    (b"nothing here", [b""], b"nothing here"),
])
def test_mask(output: bytes, values: list[bytes], expected: bytes) -> None:
    """Exact values are masked, longest first, and so is a value cut off at the end of the output."""
    assert mask(output, values) == expected


def test_env_source_names_the_variable_not_a_value() -> None:
    """A missing variable is named; a present one is read."""
    src = EnvSecretSource("APP_", {"APP_TOKEN": "v"})
    assert src.read("TOKEN") == b"v"
    with pytest.raises(SecretError, match="APP_MISSING is not set"):
        src.read("MISSING")


def test_file_source_stays_in_its_directory(tmp_path: Path) -> None:
    """Keys are files in the directory; a key leaving it is refused."""
    (tmp_path / "db").write_bytes(b"pw")
    src = FileSecretSource(tmp_path)
    assert src.read("db") == b"pw"
    with pytest.raises(SecretError, match="leaves"):
        src.read("../etc/passwd")


def test_unavailable_source_types_fail_closed() -> None:
    """Source types this version cannot read refuse, rather than deliver nothing."""
    from onexd.policy.models import SecretSourceSpec

    with pytest.raises(SecretError, match="not available"):
        source_for(SecretSourceSpec(type="encrypted"))
    assert os.environ is not None
