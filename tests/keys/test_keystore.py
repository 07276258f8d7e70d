"""Keystore, master key, tokens, API keys and the encrypted store, with injected clocks (no sleeps)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest

from onexd.config import AuthConfig
from onexd.crypto import TokenError, jwt_sign
from onexd.errors import ConfigError, KeyFileError
from onexd.identity.apikeys import ApiKeyError, ApiKeyStore
from onexd.identity.tokens import TokenService
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key
from onexd.secrets.store import EncryptedStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_master_key_file_is_generated_0600_and_reused(tmp_path: Path) -> None:
    """Without ONEXD_MASTER_KEY or a credential, a 0600 key file is created once and used afterwards."""
    first = load_master_key(tmp_path, {})
    assert first.source == "generated-file" and (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert load_master_key(tmp_path, {}).key == first.key
    assert "key" not in repr(first).replace("MasterKey", "")


def test_master_key_precedence_and_checks(tmp_path: Path) -> None:
    """The environment wins over a credential file; a short key or a group-readable file is refused."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "master-key").write_text("credential-material-0123456789")
    env = {"ONEXD_MASTER_KEY": "x" * 32, "CREDENTIALS_DIRECTORY": str(creds)}
    assert load_master_key(tmp_path, env).source == "env"
    assert load_master_key(tmp_path, {"CREDENTIALS_DIRECTORY": str(creds)}).source == "credential"
    with pytest.raises(ConfigError, match="shorter"):
        load_master_key(tmp_path, {"ONEXD_MASTER_KEY": "short"})
    (tmp_path / "master.key").write_text(base64.b64encode(b"k" * 32).decode())
    (tmp_path / "master.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_master_key(tmp_path, {})


def test_private_keys_are_encrypted_at_rest(tmp_path: Path, clock: Clock) -> None:
    """The keystore file holds no PEM private key; another master key cannot open it."""
    master = load_master_key(tmp_path, {"ONEXD_MASTER_KEY": "m" * 32})
    store = Keystore(tmp_path / "keys.json", master, clock=clock)
    text = (tmp_path / "keys.json").read_text()
    assert "PRIVATE KEY" not in text and (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    store.signing_key()
    other = Keystore(tmp_path / "keys.json", load_master_key(tmp_path, {"ONEXD_MASTER_KEY": "n" * 32}), clock=clock)
    with pytest.raises(KeyFileError):
        other.signing_key()


def test_rotation_publishes_before_signing_and_retires_after_grace(tmp_path: Path, clock: Clock) -> None:
    """pending -> active -> grace -> retired; the JWKS has the next key before it signs; a retired key no
    longer verifies even for a token that has not expired."""
    store = Keystore(tmp_path / "keys.json", load_master_key(tmp_path, {}), clock=clock)
    pending = next(e.kid for e in store.entries() if e.state == "pending")
    old_kid, old_key = store.signing_key()
    assert {k["kid"] for k in store.jwks()["keys"]} == {old_kid, pending}
    new_kid = store.rotate(grace_s=100, reason="test")
    assert new_kid == pending and store.signing_key()[0] == pending
    assert old_kid in {k["kid"] for k in store.jwks()["keys"]}  # grace: still verifies
    clock.now += 101
    assert store.retire_expired() == [old_kid]
    assert old_kid not in store.verifying_keys() and store.public_key(old_kid) is not None
    states = {e.kid: e.state for e in store.entries()}
    assert states[old_kid] == "retired" and next(e for e in store.entries() if e.kid == old_kid).sealed_private is None
    auth = AuthConfig.model_validate({"tokens": {"ttlSeconds": 10**6}})
    service = TokenService(store, auth, clock=clock)
    now = int(clock.now)
    late = jwt_sign({"iss": "onexd", "aud": "onexd", "sub": "x", "iat": now, "exp": now + 10**5, "jti": "j"}, old_key,
                    old_kid)
    with pytest.raises(TokenError, match="retired"):
        service.verify(late)


def _service(tmp_path: Path) -> tuple[TokenService, Keystore]:
    store = Keystore(tmp_path / "keys.json", load_master_key(tmp_path, {}))
    return TokenService(store, AuthConfig.model_validate({"tokens": {"ttlSeconds": 600}})), store


def test_token_round_trip_and_every_bad_token(tmp_path: Path) -> None:
    """A valid token gives its subject; expired, early, wrong aud/iss, unknown kid, alg none, HS256 with the
    public key, and tampered tokens are all refused."""
    service, store = _service(tmp_path)
    token, _ = service.issue("ci-bot", 60)
    assert service.verify(token).display == "Token:ci-bot"
    kid, key = store.signing_key()
    now = int(time.time())
    base = {"iss": "onexd", "aud": "onexd", "sub": "x", "iat": now, "exp": now + 60, "jti": "j"}
    public_pem = next(e.public_pem for e in store.entries() if e.kid == kid)
    bad = {
        "expired": jwt_sign({**base, "exp": now - 60}, key, kid),
        "not-yet-valid": jwt_sign({**base, "nbf": now + 600}, key, kid),
        "wrong-aud": jwt_sign({**base, "aud": "other"}, key, kid),
        "wrong-iss": jwt_sign({**base, "iss": "other"}, key, kid),
        "unknown-kid": jwt_sign(base, key, "0000000000000000"),
        "alg-none": jwt.encode(base, None, algorithm="none", headers={"kid": kid}),
        "tampered": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        "no-exp": jwt_sign({k: v for k, v in base.items() if k != "exp"}, key, kid),
    }
    # HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": kid, "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(base).encode()).rstrip(b"=")
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(public_pem.encode(), header + b"." + body, hashlib.sha256).digest())
    bad["hs256-public-key"] = (header + b"." + body + b"." + sig.rstrip(b"=")).decode()
    for name, value in bad.items():
        with pytest.raises(TokenError):
            service.verify(value)
        assert name


def test_token_ttl_is_bounded(tmp_path: Path) -> None:
    """A token cannot be issued for longer than the configured TTL (so no token outlives its key's grace)."""
    service, _ = _service(tmp_path)
    with pytest.raises(TokenError, match="ttl"):
        service.issue("x", 601)


def test_api_keys_hash_only_expiry_warning_revocation(tmp_path: Path, clock: Clock) -> None:
    """Shown once, stored as a hash; expiring keys warn; expired and revoked keys are refused."""
    store = ApiKeyStore(tmp_path / "apikeys.json", default_ttl_days=90, warn_days=14, clock=clock)
    key, _ = store.create("deploy-bot")
    secret = key.split("_", 2)[2]  # the secret itself may hold "_" (URL-safe base64): split off the prefix only
    assert len(secret) == 43 and secret not in (tmp_path / "apikeys.json").read_text()
    principal, warn = store.verify(key)
    assert principal.display == "ApiKey:deploy-bot" and warn is None
    clock.now += 80 * 86400
    assert store.verify(key)[1] is not None  # inside the 14-day window
    clock.now += 11 * 86400
    with pytest.raises(ApiKeyError, match="expired"):
        store.verify(key)
    fresh, _ = store.create("deploy-bot")  # an expired name can be reused
    store.revoke("deploy-bot")
    with pytest.raises(ApiKeyError, match="revoked"):
        store.verify(fresh)
    with pytest.raises(ApiKeyError):
        store.verify(fresh[:-1] + ("A" if fresh[-1] != "A" else "B"))
    assert [e["state"] for e in store.entries()] == ["revoked"]


def test_encrypted_store_rotation_reencrypts_every_entry(tmp_path: Path) -> None:
    """After a data key rotation every entry is under the new key and reads the same; no plaintext on disk."""
    store = EncryptedStore(tmp_path / "store.json", load_master_key(tmp_path, {}))
    values = {f"k{i}": f"value-{i}-{'x' * i}".encode() for i in range(5)}
    for k, v in values.items():
        store.set("vault-like", k, v)
    before = json.loads((tmp_path / "store.json").read_text())
    new_id = store.rotate("test")
    after = json.loads((tmp_path / "store.json").read_text())
    assert after["dataKey"]["id"] == new_id != before["dataKey"]["id"]
    assert all(after["entries"][n] != before["entries"][n] for n in before["entries"])
    assert {k: store.get("vault-like", k) for k in values} == values
    raw = (tmp_path / "store.json").read_bytes()
    assert not any(v in raw for v in values.values())
