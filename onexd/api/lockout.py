"""Principal lockout at the HTTP boundary (incident response): count strikes, refuse a locked-out caller's
submissions, show active locks. The tracker (onexd.identity.lockout) decides; this module audits its results."""

from __future__ import annotations

from typing import Any

from onexd.api.context import ApiContext
from onexd.errors import LockedOut
from onexd.identity.principal import Principal


async def refuse_if_locked(ctx: ApiContext, principal: Principal) -> None:
    """Before a job is admitted: a locked-out principal gets LockedOut (a 403 that names the lockout), audited."""
    if ctx.lockout is None:
        return
    lock = ctx.lockout.locked(principal.display)
    if lock is None:
        return
    if ctx.audit is not None:
        await ctx.audit.aappend("authz.decision", principal.display, "denied",
                                {"permission": "nodes:execute", "reasons": ["locked-out"], "lockedUntil": lock.until})
    raise LockedOut(lock.reason, reasons=[{"code": "locked-out", "message": lock.reason}])


async def strike(ctx: ApiContext, principal: str, what: str) -> None:
    """Count a denial or a blocked syscall against a principal; audit the lock it may cause."""
    if ctx.lockout is None:
        return
    lock = ctx.lockout.strike(principal, what)
    if lock is not None and ctx.audit is not None:
        await ctx.audit.aappend("principal.locked", principal, "denied", lock.as_dict())


def lockout_health(ctx: ApiContext) -> dict[str, Any]:
    """The `lockouts` part of /v1/health: who is locked out, until when."""
    return {"lockouts": [lock.as_dict() for lock in ctx.lockout.active()] if ctx.lockout is not None else []}
