"""Signed bundles: `policy sign` then `policy validate --trust`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from onexd.crypto import generate_ed25519, private_pem, public_pem
from tests.conftest import minimal_docs, run_cli, write_bundle


def _keypair(tmp_path: Path, name: str, rsa_key: bool = False) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key else generate_ed25519()
    priv, pub = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub"
    priv.write_bytes(private_pem(key))
    pub.write_bytes(public_pem(key.public_key()))
    return priv, pub


def _validate(bundle: Path, pub: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, set[str]]:
    code, out, _ = run_cli(["policy", "validate", str(bundle), "--trust", str(pub), "-o", "json"], capsys)
    return code, {i["code"] for i in json.loads(out)}


@pytest.mark.parametrize("rsa_key", [False, True], ids=["ed25519", "rsa"])
def test_signed_bundle_validates_with_trust(tmp_path: Path, rsa_key: bool,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle signed by a trusted key (EdDSA or RS256) validates."""
    bundle = write_bundle(tmp_path / "p", "base", minimal_docs())
    priv, pub = _keypair(tmp_path, "k", rsa_key)
    code, _, _ = run_cli(["policy", "sign", str(bundle), "--key", str(priv)], capsys)
    assert code == 0
    assert (bundle / "signature.jws").read_text().count(".") == 2
    assert _validate(bundle, pub, capsys) == (0, set())


def test_unsigned_bundle_is_rejected_with_trust(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --trust, a bundle without signature.jws is invalid."""
    bundle = write_bundle(tmp_path / "p", "base", minimal_docs())
    _, pub = _keypair(tmp_path, "k")
    assert _validate(bundle, pub, capsys) == (3, {"signature/missing"})


def test_bundle_signed_by_another_key_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid signature by an untrusted key does not count."""
    bundle = write_bundle(tmp_path / "p", "base", minimal_docs())
    priv, _ = _keypair(tmp_path, "mallory")
    _, trusted = _keypair(tmp_path, "ops")
    run_cli(["policy", "sign", str(bundle), "--key", str(priv)], capsys)
    assert _validate(bundle, trusted, capsys) == (3, {"signature/untrusted"})


@pytest.mark.parametrize("change", ["modify", "add", "remove"])
def test_file_changed_after_signing_is_rejected(tmp_path: Path, change: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Modifying, adding or removing a file after signing breaks the signature, naming the file."""
    bundle = write_bundle(tmp_path / "p", "base", minimal_docs(), files={"notes.txt": "hello"})
    priv, pub = _keypair(tmp_path, "k")
    run_cli(["policy", "sign", str(bundle), "--key", str(priv)], capsys)
    if change == "modify":
        (bundle / "policy.yaml").write_text((bundle / "policy.yaml").read_text().replace("pids: 32", "pids: 33"))
    elif change == "add":
        (bundle / "extra.txt").write_text("x")
    else:
        (bundle / "notes.txt").unlink()
    code, out, _ = run_cli(["policy", "validate", str(bundle), "--trust", str(pub), "-o", "json"], capsys)
    items = json.loads(out)
    assert code == 3
    assert [i["code"] for i in items] == ["signature/mismatch"]


def test_tampered_signature_token_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Altering the JWS itself (payload swapped) fails verification."""
    bundle = write_bundle(tmp_path / "p", "base", minimal_docs())
    priv, pub = _keypair(tmp_path, "k")
    run_cli(["policy", "sign", str(bundle), "--key", str(priv)], capsys)
    header, payload, sig = (bundle / "signature.jws").read_text().strip().split(".")
    (bundle / "signature.jws").write_text(f"{header}.{payload[:-4]}AAAA.{sig}")
    code, codes = _validate(bundle, pub, capsys)
    assert code == 3
    assert codes <= {"signature/untrusted", "signature/invalid"} and codes


def test_signing_refuses_an_invalid_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only a valid bundle can be signed; the problems are shown and the exit code is 3."""
    docs = minimal_docs()
    docs[0]["spec"]["user"] = "0:0"
    bundle = write_bundle(tmp_path / "p", "base", docs)
    priv, _ = _keypair(tmp_path, "k")
    code, _, _ = run_cli(["policy", "sign", str(bundle), "--key", str(priv)], capsys)
    assert code == 3
    assert not (bundle / "signature.jws").exists()


def test_keygen_writes_private_key_0600(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """keygen writes KEY (0600) and KEY.pub, and refuses to overwrite."""
    key = tmp_path / "sign.pem"
    assert run_cli(["policy", "keygen", str(key)], capsys)[0] == 0
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "sign.pem.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert run_cli(["policy", "keygen", str(key)], capsys)[0] == 2
