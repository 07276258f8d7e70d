"""What the HTTP application is given: the services it wires requests to (built by the composition root)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from onexd.api.ratelimit import RateLimiter
from onexd.audit.sampling import ReadSampler
from onexd.audit.trail import AuditLog
from onexd.config import ApiConfig
from onexd.identity.apikeys import ApiKeyStore
from onexd.identity.authn import Authenticator
from onexd.identity.lockout import LockoutTracker
from onexd.identity.principal import Principal
from onexd.identity.tokens import TokenService
from onexd.jobs.service import JobService
from onexd.keys.keystore import Keystore
from onexd.metrics import Metrics
from onexd.policy.manager import PolicyManager


def failure_limiter(limits: ApiConfig) -> RateLimiter:
    """Failed authentications per peer uid: a burst, then so many a minute (past that: 429, credentials unread)."""
    return RateLimiter(limits.authFailuresPerMinute, limits.authFailureBurst)


@dataclass
class Credentials:
    """Who may call besides Unix peers, and onexd's own keys."""

    tokens: TokenService
    apikeys: ApiKeyStore
    keystore: Keystore
    rotate_signing: Callable[[str], str]
    rotate_store: Callable[[str], str]


@dataclass
class ApiContext:
    policy: PolicyManager
    jobs: JobService
    limiter: RateLimiter
    reload: Callable[[str, frozenset[str]], Awaitable[dict[str, Any]]]
    engine_ok: Callable[[], bool]
    credentials: Credentials | None = None
    audit: AuditLog | None = None
    metrics: Metrics | None = None
    verify_audit: Callable[[], dict[str, Any]] | None = None
    zones: Callable[[], dict[str, bool]] | None = None
    pool: Callable[[], list[dict[str, Any]]] | None = None  # warm-pool state per key; None: no pool
    max_body_bytes: int = 1024 * 1024
    limits: ApiConfig = field(default_factory=ApiConfig)  # the daemon config's `api` bounds (body timeout here)
    backend: str = "docker"  # the runtime backend's name: health says `engine: fake` when no containers run
    authenticator: Authenticator = field(default_factory=Authenticator)  # default: Unix peers only
    # Failed authentications per peer uid, checked before credentials are looked at (see middleware.py).
    failures: RateLimiter = field(default_factory=lambda: failure_limiter(ApiConfig()))
    # Job forensics: the principal lockout (None when disabled) and the clock audit searches measure ages by.
    lockout: LockoutTracker | None = None
    clock: Callable[[], float] = time.time
    read_sampler: ReadSampler = field(default_factory=ReadSampler)  # routine reads audited in aggregate


CTX = web.AppKey("ctx", ApiContext)
# Typed request keys: string keys make aiohttp warn (an error under the test suite's warning filter).
PRINCIPAL = web.RequestKey("onexd.principal", Principal)
EXPIRY_WARNING = web.RequestKey("onexd.expiry-warning", str)


def context(request: web.Request) -> ApiContext:
    return request.app[CTX]


def principal_of(request: web.Request) -> Principal:
    """The caller, as the middleware authenticated it."""
    return request[PRINCIPAL]
