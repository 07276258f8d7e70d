"""Bearer tokens: JWTs onexd issues (signed by the keystore's active key) and JWTs of trusted external
issuers (keys from a JWKS file or URL). Only asymmetric algorithms; `iss`, `aud`, `exp`, `iat`, `sub`, `jti`
required; `nbf` honoured; the key is chosen by `kid` among keys that verify, and fixes the algorithm.

An external issuer's keys are fetched on a thread of their own, one fetch per issuer at a time, never on the
event loop and never while a lock is held: `keys_pending()` starts a fetch that is due and hands back what to
wait for (the caller bounds the wait), `verify()` itself never waits. A failed fetch is remembered and retried
only after a backoff that doubles (JWKS_BACKOFF_S up to JWKS_BACKOFF_MAX_S), so a token merely claiming an
issuer whose JWKS does not answer costs nothing more than a 401 until then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from onexd.config import AuthConfig, JwksIssuer
from onexd.crypto import ALGORITHMS, PublicKey, jwt_header, jwt_sign, jwt_unverified_issuer, jwt_verify, keys_from_jwks
from onexd.errors import TokenRejected, TokenRequestInvalid
from onexd.identity.principal import Principal
from onexd.keys.keystore import Keystore

log = logging.getLogger("onexd.identity")
ALLOWED_ALGORITHMS = frozenset(ALGORITHMS)
JWKS_REFRESH_S = 300
JWKS_FETCH_TIMEOUT_S = 5.0
JWKS_BACKOFF_S = 5.0  # after the first failed fetch; doubled per further failure
JWKS_BACKOFF_MAX_S = 300.0
JWKS_WAIT_S = 2.0  # the longest a request waits for a fetch; one running longer is waited for by no one


@dataclass
class _External:
    config: JwksIssuer
    keys: dict[str, PublicKey]
    fetched_at: float
    failures: int = 0
    retry_at: float = 0.0
    pending: Future[None] | None = None
    pending_since: float = 0.0


class TokenService:
    def __init__(self, keystore: Keystore, auth: AuthConfig, clock: Callable[[], float] = time.time,
                 read_jwks: Callable[[JwksIssuer], dict[str, object]] | None = None) -> None:
        self.keystore = keystore
        self.issuer = auth.tokens.issuer
        self.audience = auth.tokens.audience
        self.max_ttl_s = auth.tokens.ttlSeconds
        self.clock = clock
        self._external = {i.issuer: _External(i, {}, 0.0) for i in auth.jwksIssuers}
        self._lock = threading.Lock()  # guards the issuers' state only: never held across a fetch
        self._read_jwks = read_jwks or _read_jwks

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
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {str(alg)[:40]!r} is not accepted")
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
        # An external issuer's subjects are its own: namespaced, so `sub: ci-bot` is never onexd's Token:ci-bot.
        return Principal(kind="token", name=str(claims["sub"]), issuer=None if issuer == self.issuer else issuer)

    def keys_pending(self, token: str) -> Future[None] | None:
        """For a token of an external issuer whose keys are not at hand: the fetch (started now if due and none
        runs) to wait for, at most JWKS_WAIT_S. None when there is nothing to wait for."""
        try:
            issuer = jwt_unverified_issuer(token)
        except TokenRejected:
            return None
        if issuer not in self._external or issuer == self.issuer:
            return None
        return self._refresh(issuer)

    def _refresh(self, issuer: str) -> Future[None] | None:
        """Starts a fetch of issuer's keys when they are missing or stale and no backoff holds; the fetch to
        wait for when there are no keys yet (stale keys serve while they are refreshed)."""
        with self._lock:
            ext = self._external[issuer]
            now = self.clock()
            due = not ext.keys or now - ext.fetched_at > JWKS_REFRESH_S
            if due and ext.pending is None and now >= ext.retry_at:
                ext.pending, ext.pending_since = Future(), now
                threading.Thread(target=self._fetch, args=(issuer, ext.pending), name="onexd-jwks",
                                 daemon=True).start()
            if ext.keys or ext.pending is None or now - ext.pending_since > JWKS_WAIT_S:
                return None  # stale keys serve while refreshed; a fetch known to be slow is not waited for
            return ext.pending

    def _fetch(self, issuer: str, done: Future[None]) -> None:
        ext = self._external[issuer]
        keys: dict[str, PublicKey] | None = None
        why = ""
        try:
            keys = keys_from_jwks(self._read_jwks(ext.config))
        except Exception as exc:  # any failure of a remote document is the issuer's, retried after the backoff
            why = type(exc).__name__
        with self._lock:
            now = self.clock()
            if keys is not None:
                ext.keys, ext.fetched_at, ext.failures, ext.retry_at = keys, now, 0, 0.0
            else:
                ext.failures += 1
                ext.retry_at = now + min(JWKS_BACKOFF_MAX_S, JWKS_BACKOFF_S * 2 ** min(ext.failures - 1, 16))
                log.error("cannot read an issuer's JWKS", extra={"issuer": issuer, "why": why,
                                                                  "retryInSeconds": ext.retry_at - now})
            ext.pending = None
        with contextlib.suppress(InvalidStateError):  # cancelled by a waiter: nothing to tell
            done.set_result(None)

    def _jwks(self, issuer: str) -> _External:
        """The issuer's keys as they are now (a due fetch is started, never waited for)."""
        self._refresh(issuer)
        with self._lock:
            ext = self._external[issuer]
            if not ext.keys:
                raise TokenRejected("issuer keys unavailable")
            return ext

def _read_jwks(issuer: JwksIssuer) -> dict[str, object]:
    if issuer.jwksFile:
        with open(issuer.jwksFile, encoding="utf-8") as f:
            return dict(json.load(f))
    assert issuer.jwksUrl is not None
    with urllib.request.urlopen(issuer.jwksUrl, timeout=JWKS_FETCH_TIMEOUT_S) as response:  # noqa: S310 - http(s) from config
        return dict(json.loads(response.read(1024 * 1024)))
