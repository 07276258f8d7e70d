"""/v1/audit: read and verify the audit trail.

A follower (`onexctl audit tail -f`) must not feed the trail it reads: an allowed read is counted but writes no
event (a denied one is audited), `wait=` long-polls instead of re-asking, and long polls end when the daemon stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from onexd.api.authz import require
from onexd.api.bodies import json_response
from onexd.api.context import context, principal_of
from onexd.errors import NotConfigured, RequestError

AUDIT_PATH = "/v1/audit"
AUDIT_MAX_WAIT_S = 30.0
AUDIT_POLL_S = 0.2
LONG_POLLS_END = web.AppKey("long-polls-end", asyncio.Event)


async def end_long_polls(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for running handlers: long polls answer now, not after their wait."""
    app[LONG_POLLS_END].set()


def install(app: web.Application) -> None:
    """The shutdown signal long polls wait on, and the hook that sets it."""
    app[LONG_POLLS_END] = asyncio.Event()
    app.on_shutdown.append(end_long_polls)


async def audit_events(request: web.Request) -> web.Response:
    """Events after `since`; `wait=SECONDS` (at most 30) long-polls until one exists. An allowed read is
    counted but not written to the trail (a denied one is), so polling it adds nothing to it."""
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), "audit:read")  # audited in aggregate
    if ctx.audit is None:
        raise NotConfigured("no audit trail in this daemon")
    try:
        since = int(request.query.get("since", "0"))
        limit = min(max(int(request.query.get("limit", "1000")), 1), 10000)
        wait = min(max(float(request.query.get("wait", "0")), 0.0), AUDIT_MAX_WAIT_S)
    except ValueError:
        raise RequestError("invalid-request", "since, limit and wait must be numbers") from None
    deadline = time.monotonic() + wait
    events = await asyncio.to_thread(ctx.audit.read, since, limit)
    ending = request.app[LONG_POLLS_END]
    while not events and time.monotonic() < deadline and not ending.is_set():
        with contextlib.suppress(TimeoutError):  # the trail's tail is in memory: checking it costs nothing
            await asyncio.wait_for(ending.wait(), AUDIT_POLL_S)
        if ctx.audit.last_seq > since:
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
    ("GET", AUDIT_PATH, audit_events),
    ("GET", "/v1/audit/verify", audit_verify),
]
