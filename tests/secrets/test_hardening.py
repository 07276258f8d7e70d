"""Regression tests for the hardening review (issue 12), secrets: onexd's own key material is never a secret
source (finding 8), and masking catches a file secret printed without its trailing newline (finding 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from onexd.policy.models import SecretSourceSpec
from onexd.secrets.sources import Reserved, SecretError, source_for
from onexd.secrets.staging import mask
from tests.conftest import doc, minimal_docs, validate_json, write_bundle


def _with_source(tmp_path: Path, source: dict[str, Any], key: str) -> Path:
    docs = minimal_docs()
    docs.append(doc("SecretSource", "src", source))
    docs.append(doc("Secret", "s", {"source": "src", "key": key}))
    return write_bundle(tmp_path, "b", docs)


@pytest.mark.parametrize(("source", "key"), [
    ({"type": "file", "path": "/var/lib/onexd"}, "master.key"),
    ({"type": "file", "path": "/var/lib"}, "onexd/master.key"),
    ({"type": "file", "path": "/run/credentials/onexd.service"}, "master-key"),
    ({"type": "env", "prefix": "ONEXD_MASTER_"}, "KEY"),
    ({"type": "env", "prefix": "ONEX"}, "D_MASTER_KEY"),
    ({"type": "env", "prefix": "O"}, "NEXD_MASTER_KEY"),
    ({"type": "vault", "address": "http://127.0.0.1:8200", "mount": "kv", "tokenFile": "/var/lib/onexd/master.key"},
     "k"),
])
def test_finding_08_source_reaching_onexd_key_material_is_rejected(
        source: dict[str, Any], key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file source at the state or credentials directory, or an env source reaching ONEXD_*, is refused."""
    code, problems = validate_json(_with_source(tmp_path, source, key), capsys)
    assert code == 3
    assert "security/secret-source-reserved" in {p["code"] for p in problems}


def test_finding_08_file_source_refuses_the_daemon_state_directory_at_read(tmp_path: Path) -> None:
    """Whatever the policy said, reading a key inside the daemon's configured state directory fails."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "master.key").write_text("onexd-own-key-material\n")
    reserved = Reserved.of(state, {})
    for directory, key in ((state, "master.key"), (tmp_path, "state/master.key")):
        source = source_for(SecretSourceSpec(type="file", path=str(directory)), {}, "src", None, reserved)
        with pytest.raises(SecretError, match="onexd's own") as caught:
            source.read(key)
        assert "onexd-own-key-material" not in str(caught.value)


def test_finding_08_file_source_refuses_the_credentials_directory_at_read(tmp_path: Path) -> None:
    """$CREDENTIALS_DIRECTORY (systemd credentials: the master key) is never read as a secret."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "master-key").write_text("credential\n")
    reserved = Reserved.of(tmp_path / "state", {"CREDENTIALS_DIRECTORY": str(creds)})
    source = source_for(SecretSourceSpec(type="file", path=str(creds)), {}, "src", None, reserved)
    with pytest.raises(SecretError, match="onexd's own"):
        source.read("master-key")


def test_finding_08_env_source_refuses_onexd_variables_at_read() -> None:
    """An env source never returns ONEXD_MASTER_KEY, however prefix and key combine."""
    environ = {"ONEXD_MASTER_KEY": "kek-material-1234567890", "APP_TOKEN": "ok"}
    source = source_for(SecretSourceSpec(type="env", prefix="O"), environ, "src")
    with pytest.raises(SecretError, match="belongs to onexd"):
        source.read("NEXD_MASTER_KEY")
    assert source_for(SecretSourceSpec(type="env", prefix="APP_"), environ, "src").read("TOKEN") == b"ok"


def test_finding_08_vault_token_file_in_state_directory_is_refused(tmp_path: Path) -> None:
    """The Vault source never sends a file of the state directory as its token (refused before any request)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "master.key").write_text("kek\n")
    spec = SecretSourceSpec(type="vault", address="http://127.0.0.1:9", mount="kv", tokenFile=str(state / "master.key"))
    source = source_for(spec, {}, "src", None, Reserved.of(state, {}))
    with pytest.raises(SecretError, match="onexd's own"):
        source.read("k")


@pytest.mark.parametrize("printed", [b"s3cr3t-value", b"s3cr3t-value\n", b"  s3cr3t-value  ", b"x s3cr3t-value y"])
def test_finding_09_file_secret_printed_without_newline_is_masked(printed: bytes) -> None:
    """The file holds `value\\n`; the job prints `value` (with or without whitespace): it is masked."""
    out = mask(b"before " + printed + b" after", [b"s3cr3t-value\n"])
    assert b"s3cr3t-value" not in out and b"***" in out


def test_finding_09_whitespace_only_differences_mask_both_forms() -> None:
    """A value stored with surrounding whitespace is masked as stored and stripped."""
    out = mask(b"a \tv4lue-x\n b v4lue-x c", [b" \tv4lue-x\n"])
    assert b"v4lue-x" not in out
