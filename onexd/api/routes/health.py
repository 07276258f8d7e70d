"""Liveness and monitoring: /version, /v1/health, /metrics, /openapi.json."""

from __future__ import annotations

from aiohttp import web

from onexd import API_VERSION, __version__
from onexd.api.authz import require
from onexd.api.bodies import json_response
from onexd.api.context import context, principal_of
from onexd.api.lockout import lockout_health
from onexd.api.openapi import document
from onexd.errors import NotConfigured


async def version(_: web.Request) -> web.Response:
    return json_response({"version": __version__, "apiVersion": API_VERSION})


async def health(request: web.Request) -> web.Response:
    ctx = context(request)
    state = ctx.policy.state
    engine = "ok" if ctx.engine_ok() else "unreachable"
    status = "ok" if not state.degraded and engine == "ok" else "degraded"
    keys = ctx.pool() if ctx.pool is not None else []
    pool = {"enabled": ctx.pool is not None, "keys": len(keys), "idle": sum(k["idle"] for k in keys),
            "wanted": sum(k["size"] for k in keys)}
    return json_response({"status": status, "engine": engine, "jobs": ctx.jobs.counts(),
                          "policy": {"digest": state.snapshot.digest, "degraded": state.degraded,
                                     "rejected": sorted(r.name for r in state.rejections.values())},
                          "pool": pool, **lockout_health(ctx)})


async def pool(request: web.Request) -> web.Response:
    """Warm-pool keys: target, policy digest, image, wanted size, idle slots and their ages, counters."""
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), "monitoring:read")
    return json_response({"enabled": ctx.pool is not None, "keys": ctx.pool() if ctx.pool is not None else []})


async def metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), "monitoring:read")
    if ctx.metrics is None:
        raise NotConfigured("no metrics in this daemon")
    return web.Response(body=ctx.metrics.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def openapi(_: web.Request) -> web.Response:
    return json_response(document())


ROUTES = [
    ("GET", "/version", version),
    ("GET", "/v1/health", health),
    ("GET", "/metrics", metrics),
    ("GET", "/v1/pool", pool),
    ("GET", "/openapi.json", openapi),
]
