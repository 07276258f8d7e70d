"""Keys, JWS, JWT, JWK and AEAD: the only module importing pyjwt and cryptography.

Only asymmetric algorithms exist here (EdDSA with Ed25519, RS256); `none` and HMAC are never accepted, so a
public key can never be misused as an HMAC secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from onexd.errors import JwsError as JwsError
from onexd.errors import JwsMalformed, JwsUntrusted, KeyFileError, TokenRejected
from onexd.errors import TokenError as TokenError

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey
ALGORITHMS = ("EdDSA", "RS256")  # the one JWS/JWT allowlist: asymmetric only, never `none` or HMAC



def algorithm_for(key: PrivateKey | PublicKey) -> str:
    return "EdDSA" if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)) else "RS256"


def key_id(public: PublicKey) -> str:
    """A stable id: the first 16 hex digits of the sha256 of the SubjectPublicKeyInfo."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def generate_ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror}") from None


def load_private_key(path: Path) -> PrivateKey:
    return load_private_pem(_read(path), str(path))


def load_public_key(path: Path) -> PublicKey:
    return load_public_pem(_read(path), str(path))


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    payload: dict[str, Any]
    kid: str
    algorithm: str


def jws_sign(payload: dict[str, Any], key: PrivateKey, typ: str) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    kid = key_id(key.public_key())
    return jwt.api_jws.encode(body, key, algorithm=algorithm_for(key), headers={"kid": kid, "typ": typ})


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise JwsMalformed(f"malformed JWS: {exc}") from None
    return dict(header)


def jws_verify(token: str, trusted: list[PublicKey], typ: str) -> VerifiedJws:
    """Verify a compact JWS against trusted keys; the algorithm is fixed by the key, never by the token."""
    header = _header(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise JwsUntrusted(f"algorithm {alg!r} is not accepted")
    if header.get("typ") != typ:
        raise JwsMalformed(f"typ {header.get('typ')!r} is not {typ!r}")
    candidates = [k for k in trusted if algorithm_for(k) == alg and (kid is None or key_id(k) == kid)]
    if not candidates:
        raise JwsUntrusted(f"no trusted key with id {kid!r}")
    for key in candidates:
        try:
            body = jwt.api_jws.decode(token, key, algorithms=[algorithm_for(key)])
        except jwt.PyJWTError:
            continue
        try:
            payload = json.loads(body)
        except ValueError:
            raise JwsUntrusted("payload is not JSON") from None
        if not isinstance(payload, dict):
            raise JwsUntrusted("payload is not a JSON object")
        return VerifiedJws(payload=payload, kid=key_id(key), algorithm=alg)
    raise JwsUntrusted("signature does not verify with the trusted key")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- symmetric: keys at rest ------------------------------------------------------------------------------


def derive_key(material: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose from key material (a master key, a credential file)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"onexd/{purpose}".encode()).derive(material)


def random_key() -> bytes:
    return os.urandom(32)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> dict[str, str]:
    """AES-256-GCM; aad binds the ciphertext to what it is (a key id, a secret's name)."""
    nonce = os.urandom(12)
    return {"nonce": b64url(nonce), "ct": b64url(AESGCM(key).encrypt(nonce, plaintext, aad))}


def unseal(key: bytes, sealed: dict[str, str], aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(_b64d(sealed["nonce"]), _b64d(sealed["ct"]), aad)
    except (InvalidTag, KeyError, ValueError):
        raise KeyFileError("cannot decrypt: wrong master key, or the data was modified") from None


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The one PEM loader of each kind: key files (with their path in messages) and the keystore's own keys.
def load_private_pem(data: bytes, source: str = "key") -> PrivateKey:
    """An unencrypted Ed25519 or RSA (at least 2048 bits) private key."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
        raise KeyFileError(f"{source}: only Ed25519 and RSA keys are supported")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise KeyFileError(f"{source}: RSA keys must have at least 2048 bits")
    return key


def load_public_pem(data: bytes, source: str = "key") -> PublicKey:
    """An Ed25519 or RSA public key; a private key is accepted too (its public half is what is trusted)."""
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{source} is not a PEM public key ({exc})") from None
    if not isinstance(key, (ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise KeyFileError(f"{source}: only Ed25519 and RSA keys are supported")
    return key


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


# --- JWT and JWK ---------------------------------------------------------------------------------------------



def to_jwk(public: PublicKey, kid: str) -> dict[str, Any]:
    algorithm: Any = OKPAlgorithm if isinstance(public, ed25519.Ed25519PublicKey) else RSAAlgorithm
    jwk = dict(algorithm.to_jwk(public, as_dict=True))
    jwk.update(kid=kid, alg=algorithm_for(public), use="sig")
    return jwk


def keys_from_jwks(data: dict[str, Any]) -> dict[str, PublicKey]:
    """kid -> public key for the asymmetric signing keys of a JWKS (anything else is ignored)."""
    out: dict[str, PublicKey] = {}
    for entry in data.get("keys", []):
        if not isinstance(entry, dict) or entry.get("kty") not in ("OKP", "RSA") or "kid" not in entry:
            continue
        try:
            key = jwt.PyJWK.from_dict(entry).key
        except jwt.PyJWTError:
            continue
        if isinstance(key, (ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
            out[str(entry["kid"])] = key
    return out


def jwt_sign(claims: dict[str, Any], key: PrivateKey, kid: str) -> str:
    return jwt.encode(claims, key, algorithm=algorithm_for(key), headers={"kid": kid, "typ": "JWT"})


def jwt_header(token: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError:
        raise TokenRejected("malformed token") from None


def jwt_unverified_issuer(token: str) -> str | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRejected("malformed token") from None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


def jwt_verify(token: str, key: PublicKey, audience: str, issuer: str, leeway_s: int = 5) -> dict[str, Any]:
    """Verify signature, exp, nbf, iat, iss and aud; the algorithm comes from the key, never from the token."""
    try:
        return dict(jwt.decode(token, key, algorithms=[algorithm_for(key)], audience=audience, issuer=issuer,
                               leeway=leeway_s, options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]}))
    except jwt.ExpiredSignatureError:
        raise TokenRejected("token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected("token not yet valid") from None
    except jwt.InvalidAudienceError:
        raise TokenRejected("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"missing claim {exc.claim}") from None
    except jwt.PyJWTError:
        raise TokenRejected("signature or token invalid") from None
