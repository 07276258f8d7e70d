"""Forensics routes: posture scores, audit search, principal lockout (check, strike, unlock). HTTP only.

Registered from app.py's route table. The shared helpers of app.py are imported when a handler runs, not when
this module loads: app.py imports this module for its table, and the other order would be circular.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from onexd.api.errors import ApiError
from onexd.audit.search import OUTCOMES, AuditQuery, parse_time, read_trail, search
from onexd.errors import UsageError
from onexd.identity.lockout import Lock, LockoutTracker
from onexd.identity.principal import Principal
from onexd.policy.models import parse_size
from onexd.policy.posture import HostCapacity, analyze

if TYPE_CHECKING:
    from onexd.api.app import ApiContext

Handler = Any
UNLOCK_PERMISSION = "users:write"  # the ONEX vocabulary's permission for managing users
MAX_SEARCH_RESULTS = 10_000


def _host(query: Any) -> HostCapacity:
    here = HostCapacity.of_this_host()
    try:
        cpus = float(query.get("hostCpus", here.cpus))
        memory = int(parse_size(query["hostMemory"])) if "hostMemory" in query else here.memory_bytes
    except (TypeError, ValueError):
        raise ApiError(400, "invalid-request", "hostCpus is a number, hostMemory a size (8Gi)") from None
    if cpus <= 0 or memory <= 0:
        raise ApiError(400, "invalid-request", "hostCpus and hostMemory must be positive")
    return HostCapacity(cpus=cpus, memory_bytes=memory)


async def policy_analyze(request: web.Request) -> web.Response:
    from onexd.api.app import CTX, PRINCIPAL, _json, _require

    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "policy:read")
    snapshot = ctx.policy.state.snapshot
    host = _host(request.query)
    return _json({"digest": snapshot.digest, "host": {"cpus": host.cpus, "memoryBytes": host.memory_bytes},
                  "postures": [p.as_dict() for p in analyze(snapshot, host)]})


async def audit_search(request: web.Request) -> web.Response:
    from onexd.api.app import CTX, PRINCIPAL, _json, _require

    ctx = request.app[CTX]
    await _require(ctx, request[PRINCIPAL], "audit:read")
    if ctx.audit is None:
        raise ApiError(503, "not-configured", "no audit trail in this daemon")
    q = request.query
    if q.get("outcome") not in (None, *OUTCOMES):
        raise ApiError(400, "invalid-request", f"outcome is one of {', '.join(OUTCOMES)}")
    try:
        now = time.time()
        query = AuditQuery(principal=q.get("principal"), node=q.get("node"), job=q.get("job"),
                           outcome=q.get("outcome"), type=q.get("type"),
                           since=parse_time(q["since"], now) if "since" in q else None,
                           until=parse_time(q["until"], now) if "until" in q else None)
        limit = min(max(int(q.get("limit", "1000")), 1), MAX_SEARCH_RESULTS)
    except (UsageError, ValueError) as exc:
        raise ApiError(400, "invalid-request", str(exc)) from None
    directory = ctx.audit.dir
    events = await asyncio.to_thread(lambda: search(read_trail(directory), query, limit))
    return _json({"events": events})


async def unlock_principal(request: web.Request) -> web.Response:
    from onexd.api.app import CTX, PRINCIPAL, _json, _require

    ctx = request.app[CTX]
    caller: Principal = request[PRINCIPAL]
    await _require(ctx, caller, UNLOCK_PERMISSION)
    name = request.match_info["name"]
    lifted = ctx.lockout.unlock(name) if ctx.lockout is not None else None
    if lifted is None:
        raise ApiError(404, "not-found", f"{name} is not locked out")
    if ctx.audit is not None:
        await ctx.audit.aappend("principal.unlocked", caller.display, "success",
                                {"subject": name, "lock": lifted.as_dict()})
    return _json({"principal": name, "unlocked": True})


async def refuse_if_locked(ctx: ApiContext, principal: Principal) -> None:
    """Before a job is admitted: a locked-out principal gets a 403 that names the lockout (and is audited)."""
    tracker: LockoutTracker | None = ctx.lockout
    if tracker is None:
        return
    lock = tracker.locked(principal.display)
    if lock is None:
        return
    if ctx.audit is not None:
        await ctx.audit.aappend("authz.decision", principal.display, "denied",
                                {"permission": "nodes:execute", "reasons": ["locked-out"], "lockedUntil": lock.until})
    raise ApiError(403, "locked-out", lock.reason, reasons=[{"code": "locked-out", "message": lock.reason}])


async def strike(ctx: ApiContext, principal: str, what: str) -> None:
    """Count a denial or a blocked syscall against a principal; audit the lock it may cause."""
    tracker: LockoutTracker | None = ctx.lockout
    if tracker is None:
        return
    lock: Lock | None = tracker.strike(principal, what)
    if lock is not None and ctx.audit is not None:
        await ctx.audit.aappend("principal.locked", principal, "denied", lock.as_dict())


def lockout_health(ctx: ApiContext) -> dict[str, Any]:
    """The `lockouts` part of /v1/health: who is locked out, until when."""
    tracker: LockoutTracker | None = ctx.lockout
    return {"lockouts": [lock.as_dict() for lock in tracker.active()] if tracker is not None else []}


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/policy/analyze", policy_analyze),
    ("GET", "/v1/audit/search", audit_search),
    ("POST", "/v1/principals/{name}/unlock", unlock_principal),
]

OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/v1/policy/analyze": {"get": {
        "summary": "Posture score (0-100, higher is stronger) and weighted findings of every profile and node "
                   "(policy:read)", "operationId": "analyzePolicy",
        "parameters": [{"name": "hostCpus", "in": "query", "schema": {"type": "number"}},
                       {"name": "hostMemory", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "scores", "content": {"application/json": {"schema": {
            "type": "object"}}}}}}},
    "/v1/audit/search": {"get": {
        "summary": "Audit events by principal, node, job, outcome, type and time range (audit:read)",
        "operationId": "searchAudit",
        "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                       for n in ("principal", "node", "job", "outcome", "type", "since", "until", "limit")],
        "responses": {"200": {"description": "matching events, oldest first", "content": {"application/json": {
            "schema": {"type": "object"}}}}}}},
    "/v1/principals/{name}/unlock": {"post": {
        "summary": "Lift a principal's lockout (users:write)", "operationId": "unlockPrincipal",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "unlocked", "content": {"application/json": {"schema": {
            "type": "object"}}}}}}},
}
