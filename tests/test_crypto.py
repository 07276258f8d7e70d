"""crypto: one PEM loader per kind, one algorithm allowlist."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from onexd.crypto import (
    ALGORITHMS,
    generate_ed25519,
    key_id,
    load_private_key,
    load_private_pem,
    load_public_key,
    private_pem,
    public_pem,
)
from onexd.errors import KeyFileError
from onexd.identity.tokens import ALLOWED_ALGORITHMS


def test_a_private_key_file_also_loads_as_its_public_half(tmp_path: Path) -> None:
    """The public loader accepts a private key file and yields the same key id as its public PEM."""
    key = generate_ed25519()
    (tmp_path / "k.pem").write_bytes(private_pem(key))
    (tmp_path / "k.pub").write_bytes(public_pem(key.public_key()))
    assert key_id(load_public_key(tmp_path / "k.pem")) == key_id(load_public_key(tmp_path / "k.pub"))
    assert key_id(load_private_key(tmp_path / "k.pem").public_key()) == key_id(key.public_key())


def test_bad_key_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    """Missing, garbage and short RSA keys are KeyFileErrors whose message names the file."""
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the key refused
    (tmp_path / "short.pem").write_bytes(private_pem(short))
    (tmp_path / "junk.pem").write_bytes(b"not a key")
    for name, why in (("missing.pem", "cannot read"), ("junk.pem", "not an unencrypted PEM"),
                      ("short.pem", "at least 2048 bits")):
        with pytest.raises(KeyFileError, match=why) as info:
            load_private_key(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(KeyFileError, match="at least 2048 bits"):
        load_private_pem(private_pem(short))


def test_one_algorithm_allowlist() -> None:
    """Tokens accept exactly the algorithms crypto signs with: asymmetric only."""
    assert set(ALGORITHMS) == ALLOWED_ALGORITHMS == {"EdDSA", "RS256"}
