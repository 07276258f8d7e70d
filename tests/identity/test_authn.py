"""Authentication: credentials or the Unix peer, refused credentials never fall back to the peer."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from onexd.config import AuthConfig
from onexd.errors import ApiKeyRejected, AuthenticationError
from onexd.identity.apikeys import ApiKeyStore
from onexd.identity.authn import Authenticator, method_of
from onexd.identity.peer import peer_credentials
from onexd.identity.principal import Principal
from onexd.identity.tokens import TokenService
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _full(tmp_path: Path) -> Authenticator:
    keystore = Keystore(tmp_path / "keystore.json", load_master_key(tmp_path, {}), "EdDSA")
    return Authenticator(TokenService(keystore, AuthConfig()), ApiKeyStore(tmp_path / "apikeys.json", 90, 14))


def _peer() -> tuple[int, int, int]:
    return 4242, 1000, 1000


def test_method_names_match_metrics_and_audit() -> None:
    """A bearer header is `bearer`, an API key `apikey`, nothing `peer`."""
    assert (method_of("Bearer x", None), method_of(None, "k"), method_of(None, None)) == ("bearer", "apikey", "peer")


def test_peer_principals_are_cached_by_an_injected_clock() -> None:
    """The group database is read once per uid/gid within the cache window, again after it; pid is per call."""
    calls: list[tuple[int, int]] = []
    clock = Clock()

    def resolve(uid: int, gid: int) -> Principal:
        calls.append((uid, gid))
        return Principal(kind="unix", name="alice", uid=uid, gids=(gid,))

    authn = Authenticator(clock=clock, resolve_unix=resolve)
    first = authn.authenticate(None, None, _peer)
    assert (first.method, first.principal.pid, first.principal.name) == ("peer", 4242, "alice")
    clock.now += 5
    authn.authenticate(None, None, _peer)
    assert len(calls) == 1
    clock.now += 6
    authn.authenticate(None, None, _peer)
    assert len(calls) == 2


def test_credentials_without_a_credential_service_are_refused() -> None:
    """A daemon without tokens or API keys refuses them (401), it does not fall back to the peer."""
    with pytest.raises(AuthenticationError) as info:
        Authenticator().authenticate("Bearer abc", None, _peer)
    assert info.value.code == "unsupported-credentials"


def test_ambiguous_and_malformed_credentials_are_refused(tmp_path: Path) -> None:
    """Both a token and a key, a non-Bearer scheme, a bad token or key: each a 401 with its own code."""
    authn = _full(tmp_path)
    cases = [(("Bearer a", "k"), "ambiguous-credentials"), (("Basic abc", None), "invalid-credentials"),
             (("Bearer not.a.token", None), "invalid-token"), ((None, "onx_bad"), "invalid-api-key")]
    for (authorization, key), code in cases:
        with pytest.raises(AuthenticationError) as info:
            authn.authenticate(authorization, key, _peer)
        assert info.value.code == code
    with pytest.raises(ApiKeyRejected):
        authn.authenticate(None, "onx_bad", _peer)


def test_a_valid_token_and_api_key_name_their_principal(tmp_path: Path) -> None:
    """An issued token authenticates as its subject, a created API key as its name."""
    authn = _full(tmp_path)
    assert authn.tokens is not None and authn.apikeys is not None
    token, _ = authn.tokens.issue("ci-bot", 60)
    found = authn.authenticate(f"Bearer {token}", None, _peer)
    assert (found.method, found.principal.name) == ("bearer", "ci-bot")
    key, _ = authn.apikeys.create("deploy", None)
    found = authn.authenticate(None, key, _peer)
    assert (found.method, found.principal.name, found.warning) == ("apikey", "deploy", None)


def test_peer_credentials_require_a_unix_socket() -> None:
    """A TCP socket (or none) has no kernel-attested peer: refused; a Unix socket pair names this process."""
    with pytest.raises(AuthenticationError):
        peer_credentials(None)
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        pid, uid, _ = peer_credentials(left)
    assert (pid, uid) == (os.getpid(), os.getuid())
