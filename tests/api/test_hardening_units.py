"""Issue 12 findings 11, 13 and 14 at unit level: JWKS backoff on an injected clock, subjects namespaced by
issuer, input schemas checked at load, bodies refused before parsing into models."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from onexd.api.bodies import check_strings
from onexd.api.ratelimit import RateLimiter
from onexd.config import AuthConfig, JwksIssuer
from onexd.errors import RequestError, TokenRejected
from onexd.identity.principal import Principal, parse_subject
from onexd.identity.tokens import JWKS_BACKOFF_S, TokenService
from onexd.policy.inputschema import problems
from onexd.policy.schema import InputValidator, check_json_schema

IDP = "https://idp.example"


class _Keystore:
    def verifying_keys(self) -> dict[str, Any]:
        return {}


def _token_for(issuer: str) -> str:
    from onexd.crypto import generate_ed25519, jwt_sign, key_id

    key = generate_ed25519()
    now = int(time.time())
    return jwt_sign({"iss": issuer, "aud": "onexd", "sub": "ci-bot", "iat": now, "exp": now + 60, "jti": "j"},
                    key, key_id(key.public_key()))


def test_finding_11_failed_jwks_fetch_is_cached_with_backoff() -> None:
    """A failing JWKS fetch runs once per backoff window (not once per token), off the caller's thread; the
    window doubles; verify() never waits for a fetch."""
    now = [1000.0]
    calls: list[str] = []
    release = threading.Event()

    def fetch(issuer: JwksIssuer) -> dict[str, object]:
        calls.append(threading.current_thread().name)
        release.wait(5)
        raise OSError("unreachable")

    auth = AuthConfig(jwksIssuers=(JwksIssuer(issuer=IDP, audience="onexd", jwksUrl=f"{IDP}/jwks"),))
    service = TokenService(_Keystore(), auth, clock=lambda: now[0], read_jwks=fetch)  # type: ignore[arg-type]
    token = _token_for(IDP)
    pending = service.keys_pending(token)
    assert pending is not None and service.keys_pending(token) is pending  # one fetch at a time
    t0 = time.monotonic()
    with pytest.raises(TokenRejected, match="issuer keys unavailable"):
        service.verify(token)  # does not wait for the running fetch
    assert time.monotonic() - t0 < 0.5
    release.set()
    pending.result(timeout=5)
    assert calls == ["onexd-jwks"]
    assert service.keys_pending(token) is None  # within the backoff: no fetch, nothing to wait for
    now[0] += JWKS_BACKOFF_S + 0.1
    second = service.keys_pending(token)
    assert second is not None
    second.result(timeout=5)
    now[0] += JWKS_BACKOFF_S + 0.1  # the window doubled: still inside it
    assert service.keys_pending(token) is None and len(calls) == 2


def test_finding_11_no_wait_for_a_fetch_known_to_be_slow() -> None:
    """Once a fetch has run longer than the wait bound, later requests do not wait for it."""
    now = [0.0]
    release = threading.Event()

    def fetch(issuer: JwksIssuer) -> dict[str, object]:
        release.wait(5)
        raise OSError("slow")

    auth = AuthConfig(jwksIssuers=(JwksIssuer(issuer=IDP, audience="onexd", jwksUrl=f"{IDP}/jwks"),))
    service = TokenService(_Keystore(), auth, clock=lambda: now[0], read_jwks=fetch)  # type: ignore[arg-type]
    token = _token_for(IDP)
    first = service.keys_pending(token)
    assert first is not None
    now[0] += 2.5
    assert service.keys_pending(token) is None
    release.set()
    first.result(timeout=5)


def test_finding_13_subjects_of_external_issuers_are_namespaced() -> None:
    """An external token's principal matches only bindings that name its issuer; `Token:ISSUER#NAME` parses."""
    own = Principal(kind="token", name="ci-bot")
    external = Principal(kind="token", name="ci-bot", issuer=IDP)
    assert own.subjects() == (("Token", "ci-bot"),)
    assert external.subjects() == (("Token", f"{IDP}#ci-bot"),)
    assert external.display == f"Token:{IDP}#ci-bot" != own.display
    assert parse_subject(f"Token:{IDP}#ci-bot") == external
    assert parse_subject("Token:ci-bot") == own


@pytest.mark.parametrize(("schema", "why"), [
    ({"$ref": "#"}, "loops"),
    ({"$ref": "#/$defs/x"}, "does not resolve"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"not": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}, "loops"),
    ({"type": "string", "pattern": "(?=a)"}, "linear-time"),
    ({"patternProperties": {"(a)\\1": {}}}, "linear-time"),
    ({"$anchor": "x"}, "not supported"),
    ({"properties": {"a": {"$ref": "http://elsewhere/s.json"}}}, "remote"),
])
def test_finding_14_input_schema_problems(schema: dict[str, Any], why: str) -> None:
    """Dangling, looping and remote references, anchors and patterns RE2 cannot run are load problems."""
    found = check_json_schema(schema)
    assert found is not None and why in found, found


def test_finding_14_recursive_schemas_that_descend_are_fine() -> None:
    """A reference back to the root under `properties`/`items` (a tree) is allowed and validates."""
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    assert problems(tree) == [] and check_json_schema(tree) is None
    assert InputValidator(tree).errors({"kids": [{"kids": []}, {"kids": 1}]}) == ["/kids/1/kids: 1 is not of type "
                                                                                 "'array'"]


def test_finding_14_patterns_run_in_linear_time() -> None:
    """`^(a+)+$` against 5000 a's and a bang, in pattern and patternProperties with additionalProperties: false,
    is decided in well under a second (Python's re would not finish)."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
              "patternProperties": {"^(b+)+$": {}}, "additionalProperties": False}
    t0 = time.monotonic()
    errors = InputValidator(schema).errors({"s": "a" * 5000 + "!", "b" * 5000 + "!": 1})
    assert time.monotonic() - t0 < 0.5
    assert len(errors) == 2


def test_finding_14_lone_surrogates_are_refused() -> None:
    """A lone surrogate in a value or a key is a RequestError; valid non-ASCII text passes."""
    check_strings({"name": "žluťoučký 🐎", "list": ["ok"]})
    for bad in ("\ud800", {"\udfff": 1}, [["x", {"y": "\udc00"}]]):
        with pytest.raises(RequestError):
            check_strings(bad)


def test_finding_12_rate_limiter_can_be_asked_without_spending() -> None:
    """`waiting` tells whether a request would be allowed without taking a token."""
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: now[0])
    assert limiter.waiting("p") is None and limiter.waiting("p") is None
    assert limiter.check("p") is None
    wait = limiter.waiting("p")
    assert wait is not None and 0.9 < wait <= 1.0
    now[0] += 1.0
    assert limiter.waiting("p") is None

