"""decide(snapshot, principal, request) -> Decision. Pure: no I/O, no clock, default deny.

A denial is a value with reasons, never an exception. Reasons name the binding, role, capability or rule that
allowed, or what is missing, so that `explain` can answer "why was my job denied?".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onexd.engine.request import JobRequest
from onexd.identity.principal import Principal
from onexd.policy.semantics import BUILTIN_ZONE
from onexd.policy.snapshot import Grant, Snapshot, has_permission

EXECUTE = "nodes:execute"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Sandbox:
    """The effective settings a job would run with."""

    profile: str
    zone: str
    secrets: tuple[str, ...]
    timeout_s: int
    image: str
    user: str

    def as_dict(self, snapshot: Snapshot) -> dict[str, Any]:
        spec = snapshot.profiles[self.profile]
        r = spec.resources
        return {
            "profile": self.profile, "image": self.image, "user": self.user, "zone": self.zone,
            "zoneMode": snapshot.zones[self.zone].mode, "secrets": list(self.secrets),
            "timeoutSeconds": self.timeout_s, "memoryBytes": r.memory, "cpus": r.cpus, "pids": r.pids,
            "nofile": r.nofile, "outputBytes": r.outputBytes, "readOnlyRootFilesystem": True,
            "capabilitiesAdded": list(spec.capabilities.add), "seccompProfile": spec.seccompProfile,
            "tmpfs": [{"path": t.path, "size": t.size, "mode": t.mode} for t in spec.tmpfs],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...]
    principal: str
    target: str
    snapshot_digest: str
    roles: tuple[str, ...] = ()
    capability: str | None = None
    sandbox: Sandbox | None = None
    bundle_versions: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self, snapshot: Snapshot | None = None) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "principal": self.principal,
            "target": self.target,
            "roles": list(self.roles),
            "capability": self.capability,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "sandbox": self.sandbox.as_dict(snapshot) if self.sandbox and snapshot else None,
            "policy": {"digest": self.snapshot_digest, "bundles": dict(self.bundle_versions)},
        }


def permissions_for(snapshot: Snapshot, principal: Principal, permission: str) -> tuple[bool, tuple[str, ...]]:
    """Whether any role bound to principal grants permission, and the roles considered."""
    roles = sorted({g.role for subject in principal.subjects() for g in snapshot.bindings.get(subject, ())
                    if g.role in snapshot.roles})
    return any(has_permission(snapshot.roles[r].permissions, permission) for r in roles), tuple(roles)


def _deny(snapshot: Snapshot, principal: Principal, request: JobRequest, reasons: list[Reason],
          roles: tuple[str, ...] = ()) -> Decision:
    return Decision(False, tuple(reasons), principal.display, request.target, snapshot.digest, roles,
                    bundle_versions=snapshot.bundle_versions)


def _via(granted_by: dict[str, tuple[tuple[str, str], Grant]], role: str) -> Reason:
    (kind, name), grant = granted_by[role]
    return Reason("binding", f"RoleBinding {grant.binding} gives role {role} to {kind}:{name}")


def _granted_by(snapshot: Snapshot, principal: Principal) -> dict[str, tuple[tuple[str, str], Grant]]:
    """role -> the first (subject, grant) giving it to principal: enough to explain; a hot path, so reasons are
    built only for what is used."""
    granted_by: dict[str, tuple[tuple[str, str], Grant]] = {}
    for subject in principal.subjects():
        for g in snapshot.bindings.get(subject, ()):
            if g.role in snapshot.roles:
                granted_by.setdefault(g.role, (subject, g))
    return granted_by


def decide(snapshot: Snapshot, principal: Principal, request: JobRequest) -> Decision:
    """Whether principal may run request under snapshot, and with which sandbox."""
    granted_by = _granted_by(snapshot, principal)
    if not granted_by:
        return _deny(snapshot, principal, request, [Reason(
            "no-binding", f"no RoleBinding names {principal.display} "
                          f"(matched subjects: {', '.join(f'{k}:{n}' for k, n in principal.subjects())})")])
    roles = tuple(sorted(granted_by))
    executing = [r for r in roles if r in snapshot.can_execute]
    if not executing:
        return _deny(snapshot, principal, request, [*(_via(granted_by, r) for r in roles), Reason(
            "missing-permission", f"none of the roles {', '.join(roles)} grants {EXECUTE}")], roles)
    reasons = [_via(granted_by, executing[0]), Reason("permission", f"role {executing[0]} grants {EXECUTE}")]
    held = frozenset().union(*(snapshot.roles[r].capabilities for r in roles)) & snapshot.capabilities.keys()

    if request.node is not None:
        node = snapshot.nodes.get(request.node)
        if node is None:
            return _deny(snapshot, principal, request, [*reasons, Reason(
                "unknown-node", f"no Node named {request.node!r} is active")], roles)
        profile_name = node.spec.profile
        profile = snapshot.profiles[profile_name]
        zone = node.spec.zone or profile.zone
        secrets = node.spec.secrets
        limit = min(node.spec.timeoutSeconds or profile.resources.timeoutSeconds, profile.resources.timeoutSeconds)
        candidates = sorted(held & snapshot.node_capabilities.get(node.name, frozenset()))
        what = f"node {node.name}"
        if not candidates:
            return _deny(snapshot, principal, request, [*reasons, Reason(
                "no-capability", f"no capability of roles {', '.join(roles)} covers {what}")], roles)
    else:
        assert request.profile is not None
        profile_name = request.profile
        found = snapshot.profiles.get(profile_name)
        if found is None:
            return _deny(snapshot, principal, request, [*reasons, Reason(
                "unknown-profile", f"no SandboxProfile named {profile_name!r} is active")], roles)
        profile = found
        zone, secrets, limit = profile.zone, (), profile.resources.timeoutSeconds
        candidates = sorted(held & snapshot.adhoc_capabilities)
        what = "ad-hoc commands"
        if not candidates:
            return _deny(snapshot, principal, request, [*reasons, Reason(
                "no-capability", f"no capability of roles {', '.join(roles)} allows ad-hoc commands "
                                 "(adhoc: true)")], roles)

    if request.timeoutSeconds is not None and request.timeoutSeconds > limit:
        return _deny(snapshot, principal, request, [*reasons, Reason(
            "timeout-above-policy", f"timeoutSeconds {request.timeoutSeconds} is above the policy's {limit}")],
            roles)
    near_misses: list[Reason] = []
    for cap_name in candidates:
        cap = snapshot.capabilities[cap_name]
        missing = []
        if profile_name not in cap.profiles:
            missing.append(f"profile {profile_name}")
        if zone != BUILTIN_ZONE and zone not in cap.zones:
            missing.append(f"zone {zone}")
        missing += [f"secret {s}" for s in secrets if s not in cap.secrets]
        if missing:
            near_misses.append(Reason("capability-incomplete",
                                      f"capability {cap_name} covers {what} but not {', '.join(missing)}"))
            continue
        holder = next(r for r in roles if cap_name in snapshot.roles[r].capabilities)
        if holder in snapshot.can_execute:  # explain with the one role that both executes and holds the grant
            reasons = [_via(granted_by, holder), Reason("permission", f"role {holder} grants {EXECUTE}")]
        else:
            reasons.append(_via(granted_by, holder))
        reasons.append(Reason("capability", (
            f"capability {cap_name} (bundle {snapshot.capability_bundle[cap_name]}) grants {what} with "
            f"profile {profile_name}, zone {zone}" + (f", secrets {', '.join(secrets)}" if secrets else ""))))
        timeout = min(limit, request.timeoutSeconds or limit)
        sandbox = Sandbox(profile=profile_name, zone=zone, secrets=tuple(secrets), timeout_s=timeout,
                          image=profile.image, user=profile.user)
        return Decision(True, tuple(reasons), principal.display, request.target, snapshot.digest, roles,
                        cap_name, sandbox, snapshot.bundle_versions)
    return _deny(snapshot, principal, request, [*reasons, *near_misses], roles)
