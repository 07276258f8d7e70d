"""HTTP/1.1 + JSON over the Unix socket (aiohttp). Routes only wire requests to services.

Every request: a correlation id, the caller's identity from SO_PEERCRED, a per-principal rate limit, and an
authorization check; every error is `{"error": {"code", "message", "correlationId"}}` from one mapping table,
never a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import Field, ValidationError

from onexd import API_VERSION, __version__
from onexd.api.errors import ApiError, error_response
from onexd.api.ratelimit import RateLimiter
from onexd.audit.trail import AuditLog
from onexd.crypto import TokenError
from onexd.engine.decide import permissions_for
from onexd.engine.request import JobRequest
from onexd.engine.translate import zone_network_name
from onexd.identity.apikeys import ApiKeyError, ApiKeyStore
from onexd.identity.principal import Principal, parse_subject, unix_principal
from onexd.identity.tokens import TokenService
from onexd.jobs.records import JobRecord, iso
from onexd.jobs.service import JobService, decision_reasons
from onexd.keys.keystore import Keystore
from onexd.logs import correlation_id
from onexd.metrics import Metrics
from onexd.policy.manager import PolicyManager
from onexd.policy.models import Model, first_error

log = logging.getLogger("onexd.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PEERCRED = struct.Struct("3i")
_CID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_JSON_DEPTH = 64
M = TypeVar("M", bound=Model)


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
    max_body_bytes: int = 1024 * 1024
    principals: dict[tuple[int, int], tuple[float, Principal]] = field(default_factory=dict)


CTX = web.AppKey("ctx", ApiContext)
PRINCIPAL = "onexd.principal"
EXPIRY_WARNING = "onexd.expiry-warning"
PUBLIC_PATHS = frozenset({"/version", "/openapi.json", "/v1/keys/jwks"})


class ExplainBody(Model):
    request: JobRequest
    subject: str | None = None  # KIND:NAME; default: the caller


class TokenBody(Model):
    subject: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,256}$")
    ttlSeconds: int | None = Field(default=None, ge=1)


class ApiKeyBody(Model):
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    ttlDays: int | None = Field(default=None, ge=1, le=3650)


class ReloadBody(Model):
    allowRollback: tuple[str, ...] = ()  # bundle names that may go back to a lower version (an explicit rollback)


class RotateBody(Model):
    target: Literal["signing", "secrets"] = "signing"


# --- identity ------------------------------------------------------------------------------------------


def peer_credentials(request: web.Request) -> tuple[int, int, int]:
    """(pid, uid, gid) of the socket peer, from the kernel (SO_PEERCRED): not forgeable by the client."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        raise ApiError(401, "no-peer-credentials", "this API is only served on a Unix socket")
    pid, uid, gid = PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
    return pid, uid, gid


def _principal(ctx: ApiContext, request: web.Request) -> Principal:
    """A bearer token's subject, an API key's name, or else the Unix peer. Bad credentials are a 401, never
    a silent fall-back to the peer."""
    auth, apikey = request.headers.get("Authorization"), request.headers.get("X-API-Key")
    if auth is not None or apikey is not None:
        creds = ctx.credentials
        if creds is None:
            raise ApiError(401, "unsupported-credentials", "this daemon accepts no tokens or API keys")
        if auth is not None and apikey is not None:
            raise ApiError(401, "ambiguous-credentials", "send a bearer token or an API key, not both")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "invalid-credentials", "Authorization must be `Bearer <token>`")
            try:
                principal = creds.tokens.verify(token.strip())
            except TokenError as exc:
                log.warning("authentication failed", extra={"method": "token", "why": str(exc)})
                raise ApiError(401, "invalid-token", f"token rejected: {exc}") from None
        else:
            try:
                principal, left = creds.apikeys.verify(apikey or "")
            except ApiKeyError as exc:
                log.warning("authentication failed", extra={"method": "apikey", "why": str(exc)})
                raise ApiError(401, "invalid-api-key", str(exc)) from None
            if left is not None:
                request[EXPIRY_WARNING] = f"API key {principal.name} expires in {left / 86400:.1f} days; rotate it"
        log.info("authenticated", extra={"method": principal.kind, "principal": principal.display})
        return principal
    pid, uid, gid = peer_credentials(request)
    now = time.monotonic()
    cached = ctx.principals.get((uid, gid))
    if cached is None or now - cached[0] > 10:  # group membership changes are picked up within 10 s
        cached = (now, unix_principal(uid, gid))
        ctx.principals[(uid, gid)] = cached
    base = cached[1]
    return Principal(kind=base.kind, name=base.name, uid=base.uid, gids=base.gids, user_name=base.user_name,
                     group_names=base.group_names, pid=pid)


async def _require(ctx: ApiContext, principal: Principal, permission: str) -> None:
    granted, roles = permissions_for(ctx.policy.state.snapshot, principal, permission)
    await _decision(ctx, principal, permission, granted, {"roles": list(roles)})
    if not granted:
        raise ApiError(403, "denied", f"{principal.display} lacks {permission}",
                       reasons=[{"code": "missing-permission",
                                 "message": f"none of the roles {', '.join(roles) or '(none)'} grants {permission}"}])


async def _decision(ctx: ApiContext, principal: Principal, permission: str, allowed: bool,
                    data: dict[str, Any]) -> None:
    """Every authorization decision is counted and, before the answer goes out, durable in the trail."""
    resource, _, action = permission.partition(":")
    result = "allowed" if allowed else "denied"
    if ctx.metrics is not None:
        ctx.metrics.authorization.labels(resource, action, result).inc()
    if ctx.audit is not None:
        await ctx.audit.aappend("authz.decision", principal.display, result, {"permission": permission, **data},
                                ctx.policy.state.snapshot.digest)


def _allowed(ctx: ApiContext, principal: Principal, permission: str) -> bool:
    return permissions_for(ctx.policy.state.snapshot, principal, permission)[0]


async def _authenticate(ctx: ApiContext, request: web.Request) -> Principal:
    """_principal(), counted and audited: failures always, token and API key successes too (a Unix peer's
    identity is the kernel's, and every decision event names it)."""
    method = "bearer" if "Authorization" in request.headers else "apikey" if "X-API-Key" in request.headers \
        else "peer"
    try:
        principal = _principal(ctx, request)
    except ApiError as exc:
        if ctx.metrics is not None:
            ctx.metrics.authentication.labels(method, "failure").inc()
        if ctx.audit is not None:
            await ctx.audit.aappend("auth.failure", None, "failure", {"method": method, "code": exc.code,
                                                                      "reason": exc.message})
        raise
    if ctx.metrics is not None:
        ctx.metrics.authentication.labels(method, "success").inc()
    if method != "peer" and ctx.audit is not None and request.path != AUDIT_PATH:  # reading the trail: see below
        await ctx.audit.aappend("auth.success", principal.display, "success", {"method": method})
    return principal


# --- middleware ----------------------------------------------------------------------------------------


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
            principal = await _authenticate(ctx, request)
            request[PRINCIPAL] = principal
            wait = ctx.limiter.check(principal.display)
            if wait is not None:
                raise ApiError(429, "rate-limited", f"too many requests from {principal.display}",
                               headers={"Retry-After": str(max(1, round(wait)))})
        response = await handler(request)
        status = response.status
        response.headers["X-Correlation-Id"] = cid
        if EXPIRY_WARNING in request:
            response.headers["X-Onexd-Warning"] = request[EXPIRY_WARNING]
        return response
    except Exception as exc:
        response = error_response(exc, cid)
        status = response.status
        return response
    finally:
        log.info("request", extra={"method": request.method, "path": request.path, "status": status,
                                   "ms": round((time.perf_counter() - started) * 1000, 2)})
        correlation_id.reset(token)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if len(raw) > request.app[CTX].max_body_bytes:
        raise ApiError(413, "body-too-large", f"request body over {request.app[CTX].max_body_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid-encoding", f"body is not UTF-8 (byte {exc.start})") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise ApiError(400, "too-deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "invalid-json", f"body is not JSON: {exc}") from None


def _depth(text: str) -> int:
    """Upper bound of JSON nesting without parsing (brackets inside strings are skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where, message = first_error(exc, "body")
        raise ApiError(400, "invalid-request", f"{where}: {message}",
                       details=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                for e in exc.errors()[:20]]) from None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=lambda d: json.dumps(d, separators=(",", ":")))


# --- handlers ------------------------------------------------------------------------------------------


async def version(_: web.Request) -> web.Response:
    return _json({"version": __version__, "apiVersion": API_VERSION})


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    state = ctx.policy.state
    engine = "ok" if ctx.engine_ok() else "unreachable"
    status = "ok" if not state.degraded and engine == "ok" else "degraded"
    return _json({"status": status, "engine": engine, "jobs": ctx.jobs.counts(),
                  "policy": {"digest": state.snapshot.digest, "degraded": state.degraded,
                             "rejected": sorted(r.name for r in state.rejections.values())}})


async def submit_job(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    principal: Principal = request[PRINCIPAL]
    body = _parse(JobRequest, await _json_body(request))
    snapshot = ctx.policy.state.snapshot  # one reference read: the job lives with this snapshot
    admission = ctx.jobs.admit(snapshot, principal, body)
    await _decision(ctx, principal, "nodes:execute", admission.decision.allowed,
                    {"target": body.target, "capability": admission.decision.capability,
                     "reasons": [r["code"] for r in decision_reasons(admission.decision)]})
    if not admission.decision.allowed:
        raise ApiError(403, "denied", f"{principal.display} may not run {body.target}",
                       reasons=decision_reasons(admission.decision))
    record = await ctx.jobs.submit(snapshot, principal, body, admission)
    if request.query.get("wait") in ("true", "1"):
        final = await ctx.jobs.wait(record.id)
        assert final is not None
        return _json(final.as_dict(), 200)
    return _json(record.as_dict(), 202, headers={"Location": f"/v1/jobs/{record.id}"})


def _visible(ctx: ApiContext, principal: Principal, record: JobRecord | None, own: str, other: str) -> JobRecord:
    if record is not None:
        if record.principal == principal.display and _allowed(ctx, principal, own):
            return record
        if _allowed(ctx, principal, other):
            return record
    raise ApiError(404, "not-found", "no such job (or not yours to see)")


def _job_id(ctx: ApiContext, request: web.Request, other: str) -> str:
    """The path's job id, or the full id of the one job a unique prefix (8+ characters) names among the jobs
    the caller may see (its own, or everyone's with the `other` permission): a prefix never reveals others' jobs."""
    given = request.match_info["id"]
    principal: Principal = request[PRINCIPAL]
    owner = None if _allowed(ctx, principal, other) else principal.display
    return ctx.jobs.store.resolve(given, owner) or given


async def get_job(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    record = _visible(ctx, request[PRINCIPAL], ctx.jobs.get(_job_id(ctx, request, "jobs:read-all")), "jobs:read",
                      "jobs:read-all")
    return _json(record.as_dict())


async def list_jobs(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    principal: Principal = request[PRINCIPAL]
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        raise ApiError(400, "invalid-request", "limit must be an integer") from None
    everyone = request.query.get("all") in ("true", "1")
    if everyone:
        await _require(ctx, principal, "jobs:read-all")
    else:
        await _require(ctx, principal, "jobs:read")
    records = ctx.jobs.store.query(None if everyone else principal.display, limit + 1,
                                   request.query.get("before"), request.query.get("status"))
    page = records[:limit]
    return _json({"jobs": [r.as_dict() for r in page], "next": page[-1].id if len(records) > limit else None})


async def job_logs(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    job_id = _job_id(ctx, request, "jobs:read-all")
    record = _visible(ctx, request[PRINCIPAL], ctx.jobs.get(job_id), "jobs:read", "jobs:read-all")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    streamed = 0
    if request.query.get("follow") in ("true", "1") and not ctx.jobs.is_final(record):
        # Live lines as the job prints them, then whatever the final (masked, capped) record adds.
        async for stream, line in ctx.jobs.follow(job_id):
            await response.write(json.dumps({"stream": stream, "line": line}).encode() + b"\n")
            streamed += 1
        final = await ctx.jobs.wait(job_id)
        assert final is not None
        record = final
    if not streamed:  # finished, or a job with secrets (never streamed live): the masked record's output
        for stream in ("stdout", "stderr"):
            for line in getattr(record, stream).splitlines():
                await response.write(json.dumps({"stream": stream, "line": line}).encode() + b"\n")
    if ctx.jobs.is_final(record):
        await response.write(json.dumps({"event": "end", "status": record.status,
                                         "truncated": record.truncated}).encode() + b"\n")
    await response.write_eof()
    return response


async def cancel_job(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    job_id = _job_id(ctx, request, "jobs:cancel-all")
    _visible(ctx, request[PRINCIPAL], ctx.jobs.get(job_id), "jobs:cancel", "jobs:cancel-all")
    record = ctx.jobs.cancel(job_id)
    assert record is not None
    return _json(record.as_dict(), 202 if not ctx.jobs.is_final(record) else 200)


async def policy_status(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "policy:read")
    state = ctx.policy.state
    return _json({
        "digest": state.snapshot.digest, "degraded": state.degraded, "reloadedAt": iso(state.reloaded_at),
        "bundles": [{"name": e.name, "directory": e.dir_name, "version": e.version, "digest": e.digest,
                     "activatedAt": iso(e.activated_at)} for e in sorted(state.entries.values(), key=lambda e: e.name)],
        "rejections": [r.as_dict() for r in state.rejections.values()],
        "problems": [p.as_dict() for p in state.problems],
    })


async def policy_reload(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "policy:reload")
    raw = await request.read()
    body = _parse(ReloadBody, await _json_body(request) if raw.strip() else {})
    if body.allowRollback:
        await _event(request, "policy.rollback-allowed", {"bundles": list(body.allowRollback)})
    return _json(await ctx.reload(f"api:{request[PRINCIPAL].display}", frozenset(body.allowRollback)))


async def policy_explain(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    principal: Principal = request[PRINCIPAL]
    body = _parse(ExplainBody, await _json_body(request))
    subject = principal
    if body.subject is not None:
        await _require(ctx, principal, "policy:read")
        try:
            subject = parse_subject(body.subject)
        except Exception as exc:
            raise ApiError(400, "invalid-request", str(exc)) from None
    snapshot = ctx.policy.state.snapshot
    from onexd.engine.decide import decide
    from onexd.jobs.runner import InvalidInput, check_input

    decision = decide(snapshot, subject, body.request)
    result = decision.as_dict(snapshot)
    result["inputErrors"] = []
    if decision.allowed and body.request.node is not None:
        try:
            check_input(snapshot.nodes[body.request.node], body.request.input)
        except InvalidInput as exc:
            result["inputErrors"] = exc.errors
    return _json(result)


async def _event(request: web.Request, type_: str, data: dict[str, Any]) -> None:
    audit = request.app[CTX].audit
    if audit is not None:
        await audit.aappend(type_, request[PRINCIPAL].display, "success", data)


# --- audit reads: a follower (onexctl audit tail -f) must not feed the trail it reads ----------------------
AUDIT_PATH = "/v1/audit"
AUDIT_MAX_WAIT_S = 30.0
AUDIT_POLL_S = 0.2
LONG_POLLS_END = web.AppKey("long-polls-end", asyncio.Event)


async def _end_long_polls(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for running handlers: long polls answer now, not after their wait."""
    app[LONG_POLLS_END].set()


async def audit_events(request: web.Request) -> web.Response:
    """Events after `since`; `wait=SECONDS` (at most 30) long-polls until one exists. An allowed read is
    counted but not written to the trail (a denied one is), so polling it adds nothing to it."""
    ctx = request.app[CTX]
    principal: Principal = request[PRINCIPAL]
    if _allowed(ctx, principal, "audit:read"):
        if ctx.metrics is not None:
            ctx.metrics.authorization.labels("audit", "read", "allowed").inc()
    else:
        await _require(ctx, principal, "audit:read")  # audits the denial and raises
    if ctx.audit is None:
        raise ApiError(503, "not-configured", "no audit trail in this daemon")
    try:
        since = int(request.query.get("since", "0"))
        limit = min(max(int(request.query.get("limit", "1000")), 1), 10000)
        wait = min(max(float(request.query.get("wait", "0")), 0.0), AUDIT_MAX_WAIT_S)
    except ValueError:
        raise ApiError(400, "invalid-request", "since, limit and wait must be numbers") from None
    deadline = time.monotonic() + wait
    events = await asyncio.to_thread(ctx.audit.read, since, limit)
    ending = request.app[LONG_POLLS_END]
    while not events and time.monotonic() < deadline and not ending.is_set():
        with contextlib.suppress(TimeoutError):  # the trail's tail is in memory: checking it costs nothing
            await asyncio.wait_for(ending.wait(), AUDIT_POLL_S)
        if ctx.audit.last_seq > since:
            events = await asyncio.to_thread(ctx.audit.read, since, limit)
    return _json({"events": events, "next": events[-1]["seq"] if events else since,
                  "lastSeq": ctx.audit.last_seq})


async def audit_verify(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "audit:read")
    if ctx.verify_audit is None:
        raise ApiError(503, "not-configured", "no audit trail in this daemon")
    return _json(await asyncio.to_thread(ctx.verify_audit))


async def list_zones(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "policy:read")
    running = await asyncio.to_thread(ctx.zones) if ctx.zones is not None else {}
    out = []
    for name, zone in sorted(ctx.policy.state.snapshot.zones.items()):
        out.append({"name": name, "mode": zone.mode,
                    "network": None if zone.mode == "none" else zone_network_name(name),
                    "proxy": ("running" if running.get(name) else "not started") if zone.mode == "egress" else None,
                    "egress": [r.model_dump(mode="json", exclude_none=True) for r in zone.egress]})
    return _json({"zones": out})


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "monitoring:read")
    if ctx.metrics is None:
        raise ApiError(503, "not-configured", "no metrics in this daemon")
    return web.Response(body=ctx.metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _creds(request: web.Request) -> Credentials:
    creds = request.app[CTX].credentials
    if creds is None:
        raise ApiError(503, "not-configured", "keys and credentials are not available in this daemon")
    return creds


async def jwks(request: web.Request) -> web.Response:
    return _json(_creds(request).keystore.jwks())


async def list_keys(request: web.Request) -> web.Response:
    await _require(request.app[CTX], request[PRINCIPAL], "keys:read")
    return _json({"keys": [e.public() for e in _creds(request).keystore.entries()]})


async def rotate_keys(request: web.Request) -> web.Response:
    await _require(request.app[CTX], request[PRINCIPAL], "keys:rotate")
    raw = await request.read()
    body = _parse(RotateBody, await _json_body(request) if raw.strip() else {})
    creds = _creds(request)
    reason = f"api:{request[PRINCIPAL].display}"
    if body.target == "signing":
        kid = await asyncio.to_thread(creds.rotate_signing, reason)
        return _json({"target": "signing", "activeKid": kid, "jwks": creds.keystore.jwks()})
    key_id = await asyncio.to_thread(creds.rotate_store, reason)
    return _json({"target": "secrets", "dataKeyId": key_id})


async def issue_token(request: web.Request) -> web.Response:
    await _require(request.app[CTX], request[PRINCIPAL], "tokens:issue")
    body = _parse(TokenBody, await _json_body(request))
    try:
        token, claims = _creds(request).tokens.issue(body.subject, body.ttlSeconds)
    except TokenError as exc:
        raise ApiError(400, "invalid-request", str(exc)) from None
    log.info("token issued", extra={"subject": body.subject, "jti": claims["jti"], "kid": claims["kid"]})
    await _event(request, "token.issued", {"subject": body.subject, "jti": claims["jti"], "kid": claims["kid"],
                                           "expiresAt": claims["exp"]})
    return _json({"token": token, "expiresAt": claims["exp"], "subject": body.subject, "kid": claims["kid"]}, 201)


async def create_apikey(request: web.Request) -> web.Response:
    await _require(request.app[CTX], request[PRINCIPAL], "apikeys:manage")
    body = _parse(ApiKeyBody, await _json_body(request))
    try:
        key, record = _creds(request).apikeys.create(body.name, body.ttlDays * 86400 if body.ttlDays else None)
    except ApiKeyError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    log.info("api key created", extra={"apikey": record.name, "keyId": record.key_id})
    await _event(request, "apikey.created", {"apikey": record.name, "keyId": record.key_id,
                                             "expiresAt": record.expires_at})
    return _json({"name": record.name, "key": key, "keyId": record.key_id, "expiresAt": record.expires_at,
                  "note": "shown once: onexd stores only its hash"}, 201)


async def list_apikeys(request: web.Request) -> web.Response:
    await _require(request.app[CTX], request[PRINCIPAL], "apikeys:manage")
    return _json({"apikeys": _creds(request).apikeys.entries()})


async def revoke_apikey(request: web.Request) -> web.Response:
    await _require(request.app[CTX], request[PRINCIPAL], "apikeys:manage")
    try:
        record = _creds(request).apikeys.revoke(request.match_info["name"])
    except ApiKeyError as exc:
        raise ApiError(404, "not-found", str(exc)) from None
    log.info("api key revoked", extra={"apikey": record.name})
    await _event(request, "apikey.revoked", {"apikey": record.name})
    return _json({"name": record.name, "revokedAt": record.revoked_at})


async def openapi(request: web.Request) -> web.Response:
    from onexd.api.openapi import document

    return _json(document())


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/version", version),
    ("GET", "/v1/health", health),
    ("POST", "/v1/jobs", submit_job),
    ("GET", "/v1/jobs", list_jobs),
    ("GET", "/v1/jobs/{id}", get_job),
    ("DELETE", "/v1/jobs/{id}", cancel_job),
    ("GET", "/v1/jobs/{id}/logs", job_logs),
    ("GET", "/v1/policy", policy_status),
    ("POST", "/v1/policy/reload", policy_reload),
    ("POST", "/v1/policy/explain", policy_explain),
    ("GET", "/v1/keys/jwks", jwks),
    ("GET", "/v1/keys", list_keys),
    ("POST", "/v1/keys/rotate", rotate_keys),
    ("POST", "/v1/tokens", issue_token),
    ("POST", "/v1/apikeys", create_apikey),
    ("GET", "/v1/apikeys", list_apikeys),
    ("DELETE", "/v1/apikeys/{name}", revoke_apikey),
    ("GET", "/v1/audit", audit_events),
    ("GET", "/v1/audit/verify", audit_verify),
    ("GET", "/metrics", metrics),
    ("GET", "/v1/zones", list_zones),
    ("GET", "/openapi.json", openapi),
]


def build_app(ctx: ApiContext) -> web.Application:
    # client_max_size is checked by aiohttp before our code reads the body: a 1 MiB+1 body is a 413.
    app = web.Application(middlewares=[errors_and_identity], client_max_size=ctx.max_body_bytes)
    app[CTX] = ctx
    app[LONG_POLLS_END] = asyncio.Event()
    app.on_shutdown.append(_end_long_polls)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app
