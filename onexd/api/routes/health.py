"""Liveness and monitoring: /version, /v1/health, /metrics, /openapi.json."""

from __future__ import annotations

import functools
import json

from aiohttp import web

from onexd import API_VERSION, __version__
from onexd.api.authz import require
from onexd.api.bodies import json_response
from onexd.api.context import context, principal_of
from onexd.api.lockout import lockout_health
from onexd.api.openapi import document
from onexd.errors import NotConfigured
from onexd.metrics import CONTENT_TYPE, Metrics


async def version(_: web.Request) -> web.Response:
    return json_response({"version": __version__, "apiVersion": API_VERSION})


async def health(request: web.Request) -> web.Response:
    ctx = context(request)
    state = ctx.policy.state
    # The fake backend runs no containers: health says so rather than pretending an engine answered.
    engine = "fake" if ctx.backend == "fake" else "ok" if ctx.engine_ok() else "unreachable"
    status = "ok" if not state.degraded and engine in ("ok", "fake") else "degraded"
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
    return metrics_response(ctx.metrics)


def metrics_response(metrics: Metrics) -> web.Response:
    """The exposition text with its content type and format version (also served by the TCP listener)."""
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE,
                                                        "X-Content-Type-Options": "nosniff"})


@functools.cache
def _openapi_body() -> bytes:
    """The document is fixed for the life of the process: built and serialized once, not on every (unauthenticated)
    request."""
    return json.dumps(document(), separators=(",", ":")).encode()


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=_openapi_body(), content_type="application/json", charset="utf-8")


ROUTES = [
    ("GET", "/version", version),
    ("GET", "/v1/health", health),
    ("GET", "/metrics", metrics),
    ("GET", "/v1/pool", pool),
    ("GET", "/openapi.json", openapi),
]
