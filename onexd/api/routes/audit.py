"""/v1/audit: read and verify the audit trail."""

from __future__ import annotations

import asyncio

from aiohttp import web

from onexd.api.authz import require
from onexd.api.bodies import json_response
from onexd.api.context import context, principal_of
from onexd.errors import NotConfigured, RequestError


async def audit_events(request: web.Request) -> web.Response:
    ctx = context(request)
    own = await require(ctx, ctx.policy.state.snapshot, principal_of(request), "audit:read")
    if ctx.audit is None:
        raise NotConfigured("no audit trail in this daemon")
    try:
        since = int(request.query.get("since", "0"))
        limit = min(max(int(request.query.get("limit", "1000")), 1), 10000)
    except ValueError:
        raise RequestError("invalid-request", "since and limit must be integers") from None
    events = await asyncio.to_thread(ctx.audit.read, since, limit)
    # The page leaves out the decision this very read wrote (its cursor moves past it): a follower polling
    # for news would otherwise read its own previous poll's event every time, and never wait.
    return json_response({"events": [e for e in events if e.get("seq") != own],
                          "next": events[-1]["seq"] if events else since, "lastSeq": ctx.audit.last_seq})


async def audit_verify(request: web.Request) -> web.Response:
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), "audit:read")
    if ctx.verify_audit is None:
        raise NotConfigured("no audit trail in this daemon")
    return json_response(await asyncio.to_thread(ctx.verify_audit))


ROUTES = [
    ("GET", "/v1/audit", audit_events),
    ("GET", "/v1/audit/verify", audit_verify),
]
