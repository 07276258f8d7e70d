"""Authentication: a bearer token's subject, an API key's name, or else the Unix peer.

Bad credentials are refused (AuthenticationError), never a silent fall-back to the peer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from onexd.errors import ApiKeyRejected, AuthenticationError, TokenRejected
from onexd.identity.apikeys import ApiKeyStore
from onexd.identity.principal import Principal, unix_principal
from onexd.identity.tokens import TokenService

log = logging.getLogger("onexd.api")
PEER_CACHE_S = 10.0  # group membership changes are picked up within this time
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]{0,16384}$")


@dataclass(frozen=True, slots=True)
class Authenticated:
    principal: Principal
    method: str  # bearer | apikey | peer
    warning: str | None = None  # an API key close to expiry


def method_of(authorization: str | None, api_key: str | None) -> str:
    """How the caller authenticates, named as metrics and audit events name it."""
    return "bearer" if authorization is not None else "apikey" if api_key is not None else "peer"


@dataclass
class Authenticator:
    """Resolves the caller of one request; Unix peers' principals are cached for PEER_CACHE_S."""

    tokens: TokenService | None = None
    apikeys: ApiKeyStore | None = None
    clock: Callable[[], float] = time.monotonic
    resolve_unix: Callable[[int, int], Principal] = unix_principal
    _peers: dict[tuple[int, int], tuple[float, Principal]] = field(default_factory=dict)

    def authenticate(self, authorization: str | None, api_key: str | None,
                     peer: Callable[[], tuple[int, int, int]]) -> Authenticated:
        method = method_of(authorization, api_key)
        if method == "peer":
            return Authenticated(self._peer(*peer()), method)
        if self.tokens is None or self.apikeys is None:
            raise AuthenticationError("this daemon accepts no tokens or API keys", "unsupported-credentials")
        if authorization is not None and api_key is not None:
            raise AuthenticationError("send a bearer token or an API key, not both", "ambiguous-credentials")
        if not _PRINTABLE_ASCII.match(authorization if authorization is not None else api_key or ""):
            raise AuthenticationError("credentials must be printable ASCII", "invalid-credentials")
        warning = None
        if authorization is not None:
            principal = self._token(authorization)
        else:
            try:
                principal, left = self.apikeys.verify(api_key or "")
            except ApiKeyRejected as exc:
                log.warning("authentication failed", extra={"method": "apikey", "why": str(exc)})
                raise
            if left is not None:
                warning = f"API key {principal.name} expires in {left / 86400:.1f} days; rotate it"
        log.info("authenticated", extra={"method": principal.kind, "principal": principal.display})
        return Authenticated(principal, method, warning)

    def keys_pending(self, authorization: str | None) -> Future[None] | None:
        """What to wait for (bounded by the caller, off the event loop) before a bearer token of an external
        issuer can be checked: its issuer's keys being fetched. None when nothing is to be fetched."""
        if self.tokens is None or authorization is None or not _PRINTABLE_ASCII.match(authorization):
            return None
        scheme, _, token = authorization.partition(" ")
        return self.tokens.keys_pending(token.strip()) if scheme.lower() == "bearer" and token.strip() else None

    def _token(self, authorization: str) -> Principal:
        assert self.tokens is not None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization must be `Bearer <token>`", "invalid-credentials")
        try:
            return self.tokens.verify(token.strip())
        except TokenRejected as exc:
            log.warning("authentication failed", extra={"method": "token", "why": str(exc)})
            raise AuthenticationError(f"token rejected: {exc}", exc.code) from None

    def _peer(self, pid: int, uid: int, gid: int) -> Principal:
        now = self.clock()
        cached = self._peers.get((uid, gid))
        if cached is None or now - cached[0] > PEER_CACHE_S:
            cached = (now, self.resolve_unix(uid, gid))
            self._peers[(uid, gid)] = cached
        base = cached[1]
        return Principal(kind=base.kind, name=base.name, uid=base.uid, gids=base.gids, user_name=base.user_name,
                         group_names=base.group_names, pid=pid)
