"""Authorization at the HTTP boundary: every decision is counted and, before the answer goes out, durable in
the trail (routine reads in aggregate: see onexd.audit.sampling). Each takes the one snapshot its
handler read, so the decision and its audit record name the same policy."""

from __future__ import annotations

from typing import Any

from onexd.api.context import ApiContext
from onexd.api.lockout import strike
from onexd.engine.decide import permissions_for
from onexd.errors import PermissionDenied
from onexd.identity.principal import Principal
from onexd.policy.snapshot import Snapshot


async def require(ctx: ApiContext, snapshot: Snapshot, principal: Principal, permission: str) -> None:
    """Raise PermissionDenied unless one of the principal's roles in snapshot grants permission."""
    granted, roles = permissions_for(snapshot, principal, permission)
    await record_decision(ctx, snapshot, principal, permission, granted, {"roles": list(roles)})
    if not granted:
        raise PermissionDenied(f"{principal.display} lacks {permission}",
                               reasons=[{"code": "missing-permission",
                                         "message": f"none of the roles {', '.join(roles) or '(none)'} grants "
                                                    f"{permission}"}])


async def record_decision(ctx: ApiContext, snapshot: Snapshot, principal: Principal, permission: str,
                          allowed: bool, data: dict[str, Any]) -> None:
    """Count the decision and audit it (allowed monitoring and audit reads in aggregate: onexd.audit.sampling)."""
    resource, _, action = permission.partition(":")
    result = "allowed" if allowed else "denied"
    if ctx.metrics is not None:
        ctx.metrics.authorization.labels(resource, action, result).inc()
    sampled = ctx.read_sampler.take(principal.display, permission, allowed)
    if ctx.audit is not None and sampled is not None:
        await ctx.audit.aappend("authz.decision", principal.display, result,
                                {"permission": permission, **data, **sampled}, snapshot.digest)
    if not allowed:  # a denial counts toward a lockout (incident response)
        await strike(ctx, principal.display, f"denied {permission}")


def allowed(snapshot: Snapshot, principal: Principal, permission: str) -> bool:
    """A check that is not itself a decision to audit (which of two visibility rules applies)."""
    return permissions_for(snapshot, principal, permission)[0]


async def event(ctx: ApiContext, principal: Principal, type_: str, data: dict[str, Any]) -> None:
    """A successful administrative action, in the trail."""
    if ctx.audit is not None:
        await ctx.audit.aappend(type_, principal.display, "success", data)
