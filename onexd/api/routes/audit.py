"""/v1/audit: read and verify the audit trail."""

from __future__ import annotations

import asyncio

from aiohttp import web

from onexd.api.authz import require
from onexd.api.bodies import int_query, json_response
from onexd.api.context import context, principal_of
from onexd.errors import NotConfigured


async def audit_events(request: web.Request) -> web.Response:
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), "audit:read")
    if ctx.audit is None:
        raise NotConfigured("no audit trail in this daemon")
    since = int_query(request, "since", 0, 0)
    limit = int_query(request, "limit", 1000, 1, 10000)
    events = await asyncio.to_thread(ctx.audit.read, since, limit)
    return json_response({"events": events, "next": events[-1]["seq"] if events else since,
                          "lastSeq": ctx.audit.last_seq})


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
