"""PolicyReloader: a policy reload and every effect it has, in the order they happen.

1. the policy directory is reloaded (PolicyManager: validate, activate, keep the last good snapshot);
2. the reload is counted (onexd_policy_reloads_total, by outcome);
3. each activated, rejected and removed bundle is one audit event, appended together;
4. if the policy changed, egress zones follow it: proxies get the new allowlists, and a zone that is gone
   leaves no network behind. An engine failure there is logged; the new policy stays active.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from onexd.audit.events import NewEvent
from onexd.audit.trail import AuditLog
from onexd.engine.translate import zone_network_name
from onexd.errors import RuntimeFailure
from onexd.jobs.pool import WarmPool
from onexd.jobs.zones import EgressZones
from onexd.metrics import Metrics
from onexd.policy.manager import PolicyManager, ReloadResult
from onexd.runtime.base import ZoneNetworks

log = logging.getLogger("onexd.daemon")


class PolicyReloader:
    def __init__(self, policy: PolicyManager, audit: AuditLog, metrics: Metrics, zones: EgressZones,
                 runtime: ZoneNetworks, pool: WarmPool | None = None) -> None:
        self.policy, self.audit, self.metrics, self.zones, self.runtime = policy, audit, metrics, zones, runtime
        self.pool = pool

    def reload(self, reason: str, rollback: frozenset[str] = frozenset()) -> ReloadResult:
        """Reload (blocking: call it off the event loop) and apply its effects."""
        zones_before = self.policy.state.snapshot.zones
        result = self.policy.reload(reason, rollback)
        self.metrics.reloads.labels("rejected" if result.rejected else "ok").inc()
        events = self.audit_records(result, reason)
        if events:
            self.audit.append_many(events)
        if result.changed or result.removed:
            self._follow_zones(set(zones_before))
        if self.pool is not None:  # keys whose shape changed drain; the new ones fill behind
            self.pool.configure(self.policy.state.snapshot)
        return result

    async def areload(self, reason: str, rollback: frozenset[str] = frozenset()) -> dict[str, Any]:
        """reload() on a thread; the answer POST /v1/policy/reload gives."""
        result = await asyncio.to_thread(self.reload, reason, rollback)
        return {"changed": result.changed, "digest": result.digest, "activated": list(result.activated),
                "rejected": list(result.rejected), "removed": list(result.removed),
                "degraded": self.policy.state.degraded}

    def audit_records(self, result: ReloadResult, reason: str) -> list[NewEvent]:
        """One event per activated, rejected and removed bundle, each naming the resulting policy digest."""
        state = self.policy.state
        events = [NewEvent("policy.activated", "onexd", "success",
                           {"bundle": d, "version": state.entries[d].version, "reason": reason}, result.digest)
                  for d in result.activated if d in state.entries]
        events += [NewEvent("policy.rejected", "onexd", "failure",
                            {"bundle": r.name, "version": r.version, "codes": sorted({p.code for p in r.problems}),
                             "reason": reason}, result.digest)
                   for d, r in state.rejections.items() if d in result.rejected]
        events += [NewEvent("policy.removed", "onexd", "success", {"bundle": d, "reason": reason}, result.digest)
                   for d in result.removed]
        return events

    def _follow_zones(self, before: set[str]) -> None:
        snapshot = self.policy.state.snapshot
        try:
            self.zones.update(snapshot)
            for gone in before - set(snapshot.zones):  # a removed zone leaves no network behind
                self.runtime.release_network(zone_network_name(gone))
        except RuntimeFailure as exc:
            log.error("zone update failed", extra={"why": str(exc)})
