"""Bearer tokens: JWTs onexd issues (signed by the keystore's active key) and JWTs of trusted external
issuers (keys from a JWKS file or URL). Only asymmetric algorithms; `iss`, `aud`, `exp`, `iat`, `sub`, `jti`
required; `nbf` honoured; the key is chosen by `kid` among keys that verify, and fixes the algorithm."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from onexd.config import AuthConfig, JwksIssuer
from onexd.crypto import ALGORITHMS, PublicKey, jwt_header, jwt_sign, jwt_unverified_issuer, jwt_verify, keys_from_jwks
from onexd.errors import TokenRejected, TokenRequestInvalid
from onexd.identity.principal import Principal
from onexd.keys.keystore import Keystore

log = logging.getLogger("onexd.identity")
ALLOWED_ALGORITHMS = frozenset(ALGORITHMS)
JWKS_REFRESH_S = 300


@dataclass
class _External:
    config: JwksIssuer
    keys: dict[str, PublicKey]
    fetched_at: float


class TokenService:
    def __init__(self, keystore: Keystore, auth: AuthConfig, clock: Callable[[], float] = time.time) -> None:
        self.keystore = keystore
        self.issuer = auth.tokens.issuer
        self.audience = auth.tokens.audience
        self.max_ttl_s = auth.tokens.ttlSeconds
        self.clock = clock
        self._external = {i.issuer: _External(i, {}, 0.0) for i in auth.jwksIssuers}
        self._lock = threading.Lock()

    def issue(self, subject: str, ttl_s: int | None = None) -> tuple[str, dict[str, object]]:
        ttl = ttl_s or self.max_ttl_s
        if not 1 <= ttl <= self.max_ttl_s:
            raise TokenRequestInvalid(f"ttl must be between 1 and {self.max_ttl_s} seconds")
        now = int(self.clock())
        claims: dict[str, object] = {"iss": self.issuer, "aud": self.audience, "sub": subject, "iat": now,
                                     "nbf": now, "exp": now + ttl, "jti": secrets.token_hex(16)}
        kid, key = self.keystore.signing_key()
        return jwt_sign(claims, key, kid), {**claims, "kid": kid}

    def verify(self, token: str) -> Principal:
        header = jwt_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not accepted")
        if not isinstance(kid, str):
            raise TokenRejected("token has no kid")
        issuer = jwt_unverified_issuer(token)
        if issuer == self.issuer:
            keys, audience = self.keystore.verifying_keys(), self.audience
        elif issuer in self._external:
            ext = self._jwks(issuer)
            keys, audience = ext.keys, ext.config.audience
        else:
            raise TokenRejected("untrusted issuer")
        key = keys.get(kid)
        if key is None:
            raise TokenRejected("unknown or retired key id")
        claims = jwt_verify(token, key, audience, issuer or "")
        return Principal(kind="token", name=str(claims["sub"]))

    def _jwks(self, issuer: str) -> _External:
        with self._lock:
            ext = self._external[issuer]
            if self.clock() - ext.fetched_at > JWKS_REFRESH_S or not ext.keys:
                try:
                    ext.keys = keys_from_jwks(_read_jwks(ext.config))
                    ext.fetched_at = self.clock()
                except (OSError, ValueError) as exc:
                    log.error("cannot read an issuer's JWKS", extra={"issuer": issuer, "why": type(exc).__name__})
                    if not ext.keys:
                        raise TokenRejected("issuer keys unavailable") from None
            return ext


def _read_jwks(issuer: JwksIssuer) -> dict[str, object]:
    if issuer.jwksFile:
        with open(issuer.jwksFile, encoding="utf-8") as f:
            return dict(json.load(f))
    assert issuer.jwksUrl is not None
    with urllib.request.urlopen(issuer.jwksUrl, timeout=5) as response:  # noqa: S310 - http(s) from config
        return dict(json.loads(response.read(1024 * 1024)))
