"""Job forensics routes: posture scores (/v1/policy/analyze), audit search (/v1/audit/search), lifting a
principal's lockout (/v1/principals/{name}/unlock)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from onexd.api.authz import event, require
from onexd.api.bodies import json_response
from onexd.api.context import context, principal_of
from onexd.audit.search import OUTCOMES, AuditQuery, parse_time, read_trail, search
from onexd.errors import NotConfigured, NotFound, RequestError, UsageError
from onexd.fields import parse_size
from onexd.policy.posture import HostCapacity, analyze

UNLOCK_PERMISSION = "users:write"  # the ONEX vocabulary's permission for managing users
MAX_SEARCH_RESULTS = 10_000


def host_of(query: Mapping[str, str]) -> HostCapacity:
    """The host to score against: this one, unless hostCpus / hostMemory say otherwise."""
    here = HostCapacity.of_this_host()
    try:
        cpus = float(query.get("hostCpus", here.cpus))
        memory = int(parse_size(query["hostMemory"])) if "hostMemory" in query else here.memory_bytes
    except (TypeError, ValueError):
        raise RequestError("invalid-request", "hostCpus is a number, hostMemory a size (8Gi)") from None
    if cpus <= 0 or memory <= 0:
        raise RequestError("invalid-request", "hostCpus and hostMemory must be positive")
    return HostCapacity(cpus=cpus, memory_bytes=memory)


def query_of(q: Mapping[str, str], now: float) -> tuple[AuditQuery, int]:
    """An audit search and its result limit from the query string."""
    if q.get("outcome") not in (None, *OUTCOMES):
        raise RequestError("invalid-request", f"outcome is one of {', '.join(OUTCOMES)}")
    try:
        query = AuditQuery(principal=q.get("principal"), node=q.get("node"), job=q.get("job"),
                           outcome=q.get("outcome"), type=q.get("type"),
                           since=parse_time(q["since"], now) if "since" in q else None,
                           until=parse_time(q["until"], now) if "until" in q else None)
        limit = min(max(int(q.get("limit", "1000")), 1), MAX_SEARCH_RESULTS)
    except (UsageError, ValueError) as exc:
        raise RequestError("invalid-request", str(exc)) from None
    return query, limit


async def policy_analyze(request: web.Request) -> web.Response:
    ctx = context(request)
    snapshot = ctx.policy.state.snapshot  # one read: the decision and the scores are of the same policy
    await require(ctx, snapshot, principal_of(request), "policy:read")
    host = host_of(request.query)
    return json_response({"digest": snapshot.digest, "host": {"cpus": host.cpus, "memoryBytes": host.memory_bytes},
                          "postures": [p.as_dict() for p in analyze(snapshot, host)]})


async def audit_search(request: web.Request) -> web.Response:
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), "audit:read")
    if ctx.audit is None:
        raise NotConfigured("no audit trail in this daemon")
    query, limit = query_of(request.query, ctx.clock())
    directory = ctx.audit.dir
    events = await asyncio.to_thread(lambda: search(read_trail(directory), query, limit))
    return json_response({"events": events})


async def unlock_principal(request: web.Request) -> web.Response:
    ctx = context(request)
    caller = principal_of(request)
    await require(ctx, ctx.policy.state.snapshot, caller, UNLOCK_PERMISSION)
    name = request.match_info["name"]
    lifted = ctx.lockout.unlock(name) if ctx.lockout is not None else None
    if lifted is None:
        raise NotFound(f"{name} is not locked out")
    await event(ctx, caller, "principal.unlocked", {"subject": name, "lock": lifted.as_dict()})
    return json_response({"principal": name, "unlocked": True})


ROUTES = [
    ("GET", "/v1/policy/analyze", policy_analyze),
    ("GET", "/v1/audit/search", audit_search),
    ("POST", "/v1/principals/{name}/unlock", unlock_principal),
]
