"""Job records: what a job was, as SPEC §5 names the fields."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onexd.timestamps import iso as iso

STATUSES = ("queued", "running", "succeeded", "failed", "timed_out", "oom_killed", "cancelled", "error")
FINAL = frozenset(STATUSES[2:])


def new_job_id(clock: float | None = None) -> str:
    """Time-ordered, 32 hex digits: 12 of milliseconds, 20 random."""
    millis = int((time.time() if clock is None else clock) * 1000)
    return f"{millis:012x}{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    status: str
    principal: str
    policy_digest: str
    policy_bundles: Mapping[str, str]
    created_at: float
    node: str | None = None
    profile: str | None = None
    zone: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    duration_ms: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reason: str = ""
    # Forensics (SPEC §14): usage as Usage.as_dict() gives it; blockedSyscall as BlockedSyscall.as_dict(),
    # "unknown" (killed by SIGSYS, no kernel record to tie), or None (seccomp stopped nothing we know of).
    usage: Mapping[str, int | None] | None = None
    blocked_syscall: Mapping[str, Any] | str | None = None
    # A pooled job: the slot it ran in and the policy digest and key the slot was created with.
    pool: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def forensics(self) -> dict[str, Any]:
        """The `usage` and `blockedSyscall` fields (also carried by the audit event job.finished)."""
        data = self.as_dict()
        return {"usage": data["usage"], "blockedSyscall": data["blockedSyscall"]}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "node": self.node, "profile": self.profile, "zone": self.zone,
            "exitCode": self.exit_code, "stdout": self.stdout, "stderr": self.stderr, "truncated": self.truncated,
            "durationMs": self.duration_ms, "principal": self.principal,
            "policy": {"digest": self.policy_digest, "bundles": dict(self.policy_bundles)},
            "createdAt": iso(self.created_at), "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at), "reason": self.reason,
            "usage": dict(self.usage) if self.usage is not None else None,
            "blockedSyscall": (dict(self.blocked_syscall) if isinstance(self.blocked_syscall, Mapping)
                               else self.blocked_syscall),
            "pool": dict(self.pool) or None,
        }
