"""/v1/policy and /v1/zones: the active policy, reloads, explanations of decisions, network zones."""

from __future__ import annotations

import asyncio

from aiohttp import web

from onexd.api.authz import event, require
from onexd.api.bodies import ExplainBody, ReloadBody, json_response, read_body
from onexd.api.context import context, principal_of
from onexd.engine.translate import zone_network_name
from onexd.identity.principal import parse_subject
from onexd.jobs.runner import explain
from onexd.timestamps import iso


async def policy_status(request: web.Request) -> web.Response:
    ctx = context(request)
    state = ctx.policy.state  # one read: everything below describes the same state
    await require(ctx, state.snapshot, principal_of(request), "policy:read")
    return json_response({
        "digest": state.snapshot.digest, "degraded": state.degraded, "reloadedAt": iso(state.reloaded_at),
        "bundles": [{"name": e.name, "directory": e.dir_name, "version": e.version, "digest": e.digest,
                     "activatedAt": iso(e.activated_at)} for e in sorted(state.entries.values(), key=lambda e: e.name)],
        "rejections": [r.as_dict() for r in state.rejections.values()],
        "problems": [p.as_dict() for p in state.problems],
    })


async def policy_reload(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    await require(ctx, ctx.policy.state.snapshot, principal, "policy:reload")
    body = await read_body(request, ReloadBody, empty_ok=True)
    if body.allowRollback:
        await event(ctx, principal, "policy.rollback-allowed", {"bundles": list(body.allowRollback)})
    return json_response(await ctx.reload(f"api:{principal.display}", frozenset(body.allowRollback)))


async def policy_explain(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    body = await read_body(request, ExplainBody)
    snapshot = ctx.policy.state.snapshot  # one read: the permission check and the explanation use the same policy
    subject = principal
    if body.subject is not None:
        await require(ctx, snapshot, principal, "policy:read")
        subject = parse_subject(body.subject, "subject")  # a bad subject is a UsageError: 400
    return json_response(explain(snapshot, subject, body.request))


async def list_zones(request: web.Request) -> web.Response:
    ctx = context(request)
    snapshot = ctx.policy.state.snapshot
    await require(ctx, snapshot, principal_of(request), "policy:read")
    running = await asyncio.to_thread(ctx.zones) if ctx.zones is not None else {}
    out = []
    for name, zone in sorted(snapshot.zones.items()):
        out.append({"name": name, "mode": zone.mode,
                    "network": None if zone.mode == "none" else zone_network_name(name),
                    "proxy": ("running" if running.get(name) else "not started") if zone.mode == "egress" else None,
                    "egress": [r.model_dump(mode="json", exclude_none=True) for r in zone.egress]})
    return json_response({"zones": out})


ROUTES = [
    ("GET", "/v1/policy", policy_status),
    ("POST", "/v1/policy/reload", policy_reload),
    ("POST", "/v1/policy/explain", policy_explain),
    ("GET", "/v1/zones", list_zones),
]
