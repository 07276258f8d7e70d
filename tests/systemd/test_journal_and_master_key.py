"""Log lines for the journal (priority prefixes) and `make master-key`, without systemd or Docker."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from onexd.logs import JournalFormatter, JsonFormatter, syslog_priority, to_journal
from tests.conftest import ROOT


@pytest.mark.parametrize(("level", "priority"), [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4),
                                                 (logging.ERROR, 3), (logging.CRITICAL, 2)])
def test_levels_map_to_syslog_priorities(level: int, priority: int) -> None:
    """Each logging level becomes the syslog priority journald understands."""
    assert syslog_priority(level) == priority


def test_journal_lines_carry_the_priority_prefix_and_the_same_json() -> None:
    """A warning for the journal is `<4>` followed by exactly the JSON line the plain formatter writes."""
    record = logging.LogRecord("onexd.policy", logging.WARNING, __file__, 1, "policy bundle rejected", None, None)
    assert JournalFormatter().format(record) == "<4>" + JsonFormatter().format(record)


def test_the_journal_is_recognised_by_device_and_inode_only(tmp_path: Path) -> None:
    """$JOURNAL_STREAM must name the descriptor's own device:inode; anything else (another file, garbage,
    unset, a closed descriptor) means plain JSON lines."""
    path = tmp_path / "stream"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        assert to_journal(fd, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not to_journal(fd, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not to_journal(fd, {"JOURNAL_STREAM": "x:y"})
        assert not to_journal(fd, {})
    finally:
        os.close(fd)
    assert not to_journal(fd, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})


def _master_key(tmp_path: Path, creds: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "master-key", f"SYSCONFDIR={tmp_path / 'etc'}", f"SYSTEMD_CREDS={creds}",
                           f"DROPIN_DIR={tmp_path / 'dropin'}"], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=60)


@pytest.mark.integration
def test_without_systemd_creds_the_master_key_is_a_plain_0600_file_said_loudly(tmp_path: Path) -> None:
    """Without systemd-creds: a 0600 key file of 44 base64 characters, a drop-in that loads it with
    LoadCredential= (and clears LoadCredentialEncrypted=), and a WARNING; a second run keeps the key."""
    proc = _master_key(tmp_path, "")
    assert proc.returncode == 0, proc.stderr
    key = tmp_path / "etc/onexd/master-key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_text()) == 44
    assert (tmp_path / "dropin/master-key.conf").read_text() == (
        f"[Service]\nLoadCredentialEncrypted=\nLoadCredential=master-key:{key}\n")
    assert "WARNING: systemd-creds not found: the master key is a PLAIN file" in proc.stdout
    before = key.read_text()
    again = _master_key(tmp_path, "")
    assert "keeping the existing" in again.stdout
    assert key.read_text() == before


@pytest.mark.integration
def test_with_systemd_creds_the_master_key_is_encrypted(tmp_path: Path) -> None:
    """With systemd-creds the key is written only as its encrypted credential, 0600, and no drop-in is made.
    (A stand-in records what systemd-creds was asked to do; the live systemd test decrypts a real one.)"""
    fake = tmp_path / "systemd-creds"
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"; cat > "$4"\n')
    fake.chmod(0o755)
    proc = _master_key(tmp_path, str(fake))
    assert proc.returncode == 0, proc.stderr
    cred = tmp_path / "etc/onexd/master-key.cred"
    assert (tmp_path / "args").read_text().split() == ["encrypt", "--name=master-key", "-", str(cred)]
    assert cred.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "etc/onexd/master-key").exists()
    assert not (tmp_path / "dropin").exists()
    assert "encrypted by systemd-creds" in proc.stdout
