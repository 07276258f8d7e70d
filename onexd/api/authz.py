"""Authorization at the HTTP boundary: every decision is counted and, before the answer goes out, durable in
the trail. Each takes the one snapshot its handler read, so the decision and its audit record name the same
policy."""

from __future__ import annotations

from typing import Any

from onexd.api.context import ApiContext
from onexd.engine.decide import permissions_for
from onexd.errors import PermissionDenied
from onexd.identity.principal import Principal
from onexd.policy.snapshot import Snapshot


async def require(ctx: ApiContext, snapshot: Snapshot, principal: Principal, permission: str) -> int | None:
    """Raise PermissionDenied unless one of the principal's roles in snapshot grants permission; the seq of the
    decision's audit event when allowed (None without a trail)."""
    granted, roles = permissions_for(snapshot, principal, permission)
    seq = await record_decision(ctx, snapshot, principal, permission, granted, {"roles": list(roles)})
    if not granted:
        raise PermissionDenied(f"{principal.display} lacks {permission}",
                               reasons=[{"code": "missing-permission",
                                         "message": f"none of the roles {', '.join(roles) or '(none)'} grants "
                                                    f"{permission}"}])
    return seq


async def record_decision(ctx: ApiContext, snapshot: Snapshot, principal: Principal, permission: str,
                          allowed: bool, data: dict[str, Any]) -> int | None:
    """Count and audit one decision; the seq of its event (None without a trail)."""
    resource, _, action = permission.partition(":")
    result = "allowed" if allowed else "denied"
    if ctx.metrics is not None:
        ctx.metrics.authorization.labels(resource, action, result).inc()
    if ctx.audit is not None:
        return await ctx.audit.aappend("authz.decision", principal.display, result,
                                       {"permission": permission, **data}, snapshot.digest)
    return None


def allowed(snapshot: Snapshot, principal: Principal, permission: str) -> bool:
    """A check that is not itself a decision to audit (which of two visibility rules applies)."""
    return permissions_for(snapshot, principal, permission)[0]


async def event(ctx: ApiContext, principal: Principal, type_: str, data: dict[str, Any]) -> None:
    """A successful administrative action, in the trail."""
    if ctx.audit is not None:
        await ctx.audit.aappend(type_, principal.display, "success", data)
