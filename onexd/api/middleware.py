"""Every request: a correlation id, the caller's identity (credentials or SO_PEERCRED), a per-principal rate
limit; every error is `{"error": {"code", "message", "correlationId"}}` from one table, never a stack trace.

Credentials are rate-limited by peer before they are looked at: each failed authentication spends one of the
peer uid's tokens (ApiContext.failures), and a peer without tokens is answered 429 without an attempt (and
without an audit event: the failures that emptied its bucket are each in the trail). A bearer token of an
external issuer whose keys are being fetched waits for them at most JWKS_WAIT_S, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from onexd.api.context import CTX, EXPIRY_WARNING, PRINCIPAL, ApiContext
from onexd.api.errors import error_response
from onexd.errors import AuthenticationError, RateLimited
from onexd.identity.authn import method_of
from onexd.identity.peer import peer_credentials
from onexd.identity.principal import Principal
from onexd.identity.tokens import JWKS_WAIT_S
from onexd.logs import correlation_id

log = logging.getLogger("onexd.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PUBLIC_PATHS = frozenset({"/version", "/openapi.json", "/v1/keys/jwks"})
# Probes and scrapes answer however busy a caller is: a monitor polling health must never see 429.
UNLIMITED_PATHS = frozenset({"/v1/health"})
# Reading the trail writes no success event to it (a follower would feed what it reads); failures are audited.
UNRECORDED_SUCCESS_PATHS = frozenset({"/v1/audit"})


def _printable(text: str) -> str:
    """Text safe for the trail: a lone surrogate (from a hostile header or token) is written escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def authenticate(ctx: ApiContext, request: web.Request) -> Principal:
    """The caller, counted and audited: failures always, token and API key successes too (a Unix peer's
    identity is the kernel's, and every decision event names it)."""
    authorization, api_key = request.headers.get("Authorization"), request.headers.get("X-API-Key")
    method = method_of(authorization, api_key)

    def peer() -> tuple[int, int, int]:
        transport = request.transport
        return peer_credentials(transport.get_extra_info("socket") if transport is not None else None)

    peer_key = ""
    if method != "peer":
        try:
            peer_key = f"uid:{peer()[1]}"
        except AuthenticationError:
            peer_key = "uid:unknown"
        wait = ctx.failures.waiting(peer_key)
        if wait is not None:
            if ctx.metrics is not None:
                ctx.metrics.authentication.labels(method, "limited").inc()
            raise RateLimited("too many failed authentications from this peer", max(1, round(wait)))
        pending = ctx.authenticator.keys_pending(authorization)
        if pending is not None:  # an external issuer's keys, fetched on their own thread: wait a bounded time
            with contextlib.suppress(TimeoutError):  # then authenticate() answers that the keys are unavailable
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)), JWKS_WAIT_S)
    try:
        found = ctx.authenticator.authenticate(authorization, api_key, peer)
    except AuthenticationError as exc:
        if peer_key:
            ctx.failures.check(peer_key)  # the failure spends one of the peer's tokens
        if ctx.metrics is not None:
            ctx.metrics.authentication.labels(method, "failure").inc()
        if ctx.audit is not None:
            await ctx.audit.aappend("auth.failure", None, "failure", {"method": method, "code": exc.code,
                                                                      "reason": _printable(str(exc))[:500]})
        raise
    if ctx.metrics is not None:
        ctx.metrics.authentication.labels(method, "success").inc()
    if method != "peer" and ctx.audit is not None and request.path not in UNRECORDED_SUCCESS_PATHS:
        await ctx.audit.aappend("auth.success", found.principal.display, "success", {"method": method})
    if found.warning is not None:
        request[EXPIRY_WARNING] = found.warning
    return found.principal


@web.middleware
async def errors_and_identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Correlation-Id", "")
    cid = given if _CID.match(given) else uuid.uuid4().hex
    token = correlation_id.set(cid)
    started = time.perf_counter()
    status = 500
    try:
        ctx = request.app[CTX]
        if request.path not in PUBLIC_PATHS:
            principal = await authenticate(ctx, request)
            request[PRINCIPAL] = principal
            wait = None if request.path in UNLIMITED_PATHS else ctx.limiter.check(principal.display)
            if wait is not None:
                raise RateLimited(f"too many requests from {principal.display}", max(1, round(wait)))
        response = await handler(request)
        status = response.status
        response.headers["X-Correlation-Id"] = cid
        if EXPIRY_WARNING in request:
            response.headers["X-Onexd-Warning"] = request[EXPIRY_WARNING]
        return response
    except Exception as exc:  # every failure answers from one table; a bug is a logged 500, never a 4xx
        response = error_response(exc, cid)
        status = response.status
        return response
    finally:
        log.info("request", extra={"method": request.method, "path": request.path, "status": status,
                                   "ms": round((time.perf_counter() - started) * 1000, 2)})
        correlation_id.reset(token)
