"""/v1/jobs: submit, list, read, follow the output of, and cancel jobs."""

from __future__ import annotations

import json

from aiohttp import web

from onexd.api.authz import allowed, record_decision, require
from onexd.api.bodies import bool_query, int_query, json_body, json_response, parse
from onexd.api.context import ApiContext, context, principal_of
from onexd.api.lockout import refuse_if_locked, strike
from onexd.engine.decide import permissions_for
from onexd.engine.request import JobRequest
from onexd.errors import NotFound, PermissionDenied, RequestError
from onexd.identity.principal import Principal
from onexd.jobs.records import STATUSES, JobRecord
from onexd.policy.snapshot import Snapshot

MAX_PAGE = 500


async def submit_job(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    body = parse(JobRequest, await json_body(request))
    await refuse_if_locked(ctx, principal)
    snapshot = ctx.policy.state.snapshot  # one reference read: the job is decided and lives with this snapshot
    try:
        record = await ctx.jobs.enqueue(snapshot, principal, body)
    except PermissionDenied:  # the execute decision was denied (and audited): it counts toward a lockout
        await strike(ctx, principal.display, "denied nodes:execute")
        raise
    if bool_query(request, "wait"):
        final = await ctx.jobs.wait(record.id)
        assert final is not None
        return json_response(final.as_dict(), 200)
    return json_response(record.as_dict(), 202, headers={"Location": f"/v1/jobs/{record.id}"})


async def visible(ctx: ApiContext, snapshot: Snapshot, principal: Principal, full_id: str, own: str,
                  other: str) -> JobRecord:
    """The record if the caller may see it (own jobs with `own`, anyone's with `other`); else NotFound, so a
    caller cannot tell another's job from no job. The decision is audited either way, naming the permission
    that decided it."""
    record = ctx.jobs.get(full_id)
    mine = record is not None and record.principal == principal.display
    granted_own, roles = permissions_for(snapshot, principal, own)
    granted_other = permissions_for(snapshot, principal, other)[0]
    if mine and granted_own:
        permission, granted = own, True
    elif granted_other:
        permission, granted = other, True
    else:
        permission, granted = (own if mine or record is None else other), False
    target = "job " + full_id[:64].encode("utf-8", "backslashreplace").decode()
    await record_decision(ctx, snapshot, principal, permission, granted, {"roles": list(roles), "target": target})
    if record is None or not granted:
        raise NotFound("no such job (or not yours to see)")
    return record


def _may(snapshot: Snapshot, principal: Principal, record: JobRecord | None, own: str, other: str) -> bool:
    """Whether the caller holds the permission for this record (own jobs with `own`, anyone's with `other`),
    decided without an audit record: the caller audits the decision it acts on."""
    if record is None:
        return False
    mine = record.principal == principal.display
    return bool((mine and permissions_for(snapshot, principal, own)[0])
                or permissions_for(snapshot, principal, other)[0])


def job_id(ctx: ApiContext, snapshot: Snapshot, request: web.Request, other: str) -> str:
    """The path's job id, or the full id of the one job a unique prefix (8+ characters) names among the jobs
    the caller may see (its own, or everyone's with the `other` permission): a prefix never reveals others' jobs."""
    given = request.match_info["id"]
    principal = principal_of(request)
    owner = None if allowed(snapshot, principal, other) else principal.display
    return ctx.jobs.store.resolve(given, owner) or given


async def get_job(request: web.Request) -> web.Response:
    ctx = context(request)
    snapshot = ctx.policy.state.snapshot
    full_id = job_id(ctx, snapshot, request, "jobs:read-all")
    record = await visible(ctx, snapshot, principal_of(request), full_id, "jobs:read", "jobs:read-all")
    return json_response(record.as_dict())


async def list_jobs(request: web.Request) -> web.Response:
    ctx = context(request)
    principal = principal_of(request)
    limit = int_query(request, "limit", 50, 1, MAX_PAGE)
    everyone = bool_query(request, "all")
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise RequestError("invalid-request", f"query parameter status: expected one of {', '.join(STATUSES)}")
    await require(ctx, ctx.policy.state.snapshot, principal, "jobs:read-all" if everyone else "jobs:read")
    records = ctx.jobs.store.query(None if everyone else principal.display, limit + 1,
                                   request.query.get("before"), status)
    page = records[:limit]
    return json_response({"jobs": [r.as_dict() for r in page],
                          "next": page[-1].id if len(records) > limit else None})


async def job_logs(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    snapshot = ctx.policy.state.snapshot
    full_id = job_id(ctx, snapshot, request, "jobs:read-all")
    record = await visible(ctx, snapshot, principal_of(request), full_id, "jobs:read", "jobs:read-all")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    streamed = 0
    if bool_query(request, "follow") and not ctx.jobs.is_final(record):
        # Live lines as the job prints them, then whatever the final (masked, capped) record adds.
        async for stream, line in ctx.jobs.follow(full_id):
            await response.write(json.dumps({"stream": stream, "line": line}).encode() + b"\n")
            streamed += 1
        final = await ctx.jobs.wait(full_id)
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
    """A job the caller may not see is a 404; one it may see but not cancel is a 403 (the job's existence is no
    secret to it), audited like every other denial."""
    ctx = context(request)
    snapshot, principal = ctx.policy.state.snapshot, principal_of(request)
    full_id = job_id(ctx, snapshot, request, "jobs:cancel-all")
    if not _may(snapshot, principal, ctx.jobs.get(full_id), "jobs:cancel", "jobs:cancel-all"):
        readable = ctx.jobs.get(job_id(ctx, snapshot, request, "jobs:read-all"))
        if readable is not None and _may(snapshot, principal, readable, "jobs:read", "jobs:read-all"):
            # It may see the job, so the job's existence is no secret: an audited 403, not a 404.
            await require(ctx, snapshot, principal, "jobs:cancel-all" if readable.principal != principal.display
                          else "jobs:cancel")
    await visible(ctx, snapshot, principal, full_id, "jobs:cancel", "jobs:cancel-all")  # audited; 404 if unseen
    record = ctx.jobs.cancel(full_id)
    assert record is not None
    return json_response(record.as_dict(), 202 if not ctx.jobs.is_final(record) else 200)


ROUTES = [
    ("POST", "/v1/jobs", submit_job),
    ("GET", "/v1/jobs", list_jobs),
    ("GET", "/v1/jobs/{id}", get_job),
    ("DELETE", "/v1/jobs/{id}", cancel_job),
    ("GET", "/v1/jobs/{id}/logs", job_logs),
]
