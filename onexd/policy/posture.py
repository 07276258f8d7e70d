"""Posture score: how strong each sandbox is, in the spirit of `systemd-analyze security`. Pure functions.

Every profile (and every node's effective sandbox: its profile with the node's zone, timeout and secrets)
starts at 100 and loses the weight of each finding; 0 is reserved for an unconfined sandbox, which validation
never lets through. The weights are onexd's own judgement, documented in docs/operator-guide.md.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from onexd.policy.diff import Change
from onexd.policy.models import NetworkZoneSpec, SandboxProfileSpec
from onexd.policy.seccomp import DENYLIST, PERMISSIVE_ACTIONS
from onexd.policy.snapshot import Snapshot

GiB = 1 << 30
MiB = 1 << 20
RUNTIME_DEFAULT = "runtime-default"
# How many syscall names the engine's default profile allows on x86_64 without conditions (Docker's
# profiles/seccomp/default.json: about 300 of the ~360 calls). The yardstick for "allowed compared with Docker".
DOCKER_DEFAULT_ALLOWED = 300
ALLOWING_ACTIONS = PERMISSIVE_ACTIONS
# Calls that reach kernel attack surface or other processes: each one a profile lets through costs points. The
# validator's deny-list (a profile that allows one of those does not load), plus calls Docker's default profile
# allows but that still widen what a job can reach.
RISKY_BUT_DEFAULT = frozenset({"adjtimex", "clock_adjtime", "migrate_pages", "modify_ldt", "move_pages",
                               "personality", "vmsplice"})
DANGEROUS_SYSCALLS = DENYLIST | RISKY_BUT_DEFAULT
# Points per added capability; one not listed costs DEFAULT_CAPABILITY_WEIGHT.
CAPABILITY_WEIGHTS = {"NET_BIND_SERVICE": 3, "KILL": 4, "CHOWN": 6, "FOWNER": 8, "FSETID": 6, "SETUID": 10,
                      "SETGID": 10, "SETPCAP": 10, "DAC_OVERRIDE": 10, "DAC_READ_SEARCH": 10, "NET_RAW": 10,
                      "MKNOD": 8, "AUDIT_WRITE": 3, "SETFCAP": 10, "SYS_CHROOT": 8}
DEFAULT_CAPABILITY_WEIGHT = 8
Subject = Literal["profile", "node"]


@dataclass(frozen=True, slots=True)
class HostCapacity:
    """What limits are compared with. The CLI reads this host; --host-cpus/--host-memory pin a reference."""

    cpus: float
    memory_bytes: int

    @classmethod
    def of_this_host(cls) -> HostCapacity:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return cls(cpus=float(os.cpu_count() or 1), memory_bytes=int(pages * page_size))


@dataclass(frozen=True, slots=True)
class Finding:
    area: str  # capabilities seccomp network tmpfs limits secrets timeout
    weight: int  # points taken off 100
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"area": self.area, "weight": self.weight, "message": self.message}


@dataclass(frozen=True, slots=True)
class Posture:
    subject: Subject
    name: str
    profile: str
    score: int
    findings: tuple[Finding, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.subject, "name": self.name, "profile": self.profile, "score": self.score,
                "findings": [f.as_dict() for f in self.findings]}


@dataclass(frozen=True, slots=True)
class _Sandbox:
    """The settings a score is computed over (a profile, or a node's effective sandbox)."""

    profile: SandboxProfileSpec
    seccomp_name: str
    seccomp: Mapping[str, Any] | None  # None: the engine's default profile
    zone_name: str
    zone: NetworkZoneSpec
    timeout_s: int
    secrets: tuple[str, ...]


def _band(value: float, bands: tuple[tuple[float, int], ...]) -> int:
    """The weight of the first band whose threshold the value exceeds (bands from highest down)."""
    return next((weight for threshold, weight in bands if value > threshold), 0)


def _capabilities(box: _Sandbox) -> list[Finding]:
    return [Finding("capabilities", CAPABILITY_WEIGHTS.get(cap, DEFAULT_CAPABILITY_WEIGHT),
                    f"adds capability {cap}") for cap in sorted(box.profile.capabilities.add)]


def allowed_syscalls(profile: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(every name an allowing rule lists, the subset allowed without argument conditions)."""
    every: set[str] = set()
    unconditional: set[str] = set()
    for rule in profile.get("syscalls") or ():
        if rule.get("action") in ALLOWING_ACTIONS:
            every.update(rule.get("names") or ())
            if not rule.get("args"):
                unconditional.update(rule.get("names") or ())
    return frozenset(every), frozenset(unconditional)


def _seccomp(box: _Sandbox) -> list[Finding]:
    if box.seccomp is None:
        return [Finding("seccomp", 12, f"the engine's default seccomp profile (about {DOCKER_DEFAULT_ALLOWED} "
                                       "calls allowed); a SeccompProfile allowlist is stronger")]
    every, unconditional = allowed_syscalls(box.seccomp)
    ratio = len(every) / DOCKER_DEFAULT_ALLOWED
    findings = [Finding("seccomp", min(18, round(12 * ratio)),
                        f"{box.seccomp_name} allows {len(every)} system calls "
                        f"({ratio:.0%} of Docker's default {DOCKER_DEFAULT_ALLOWED})")]
    dangerous = sorted(unconditional & DANGEROUS_SYSCALLS)
    if dangerous:
        findings.append(Finding("seccomp", min(24, 4 * len(dangerous)),
                                f"allows dangerous calls without conditions: {', '.join(dangerous)}"))
    return findings


def _broad(cidr: str) -> bool:
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return True
    return network.prefixlen < (24 if network.version == 4 else 48)


def _network(box: _Sandbox) -> list[Finding]:
    zone = box.zone
    if zone.mode == "none":
        return []
    if zone.mode == "internal":
        return [Finding("network", 4, f"zone {box.zone_name}: a private network shared with the zone's jobs")]
    findings = [Finding("network", 8, f"zone {box.zone_name}: outbound connections through the egress proxy"),
                Finding("network", min(10, len(zone.egress)), f"{len(zone.egress)} egress rules")]
    wide = [r.host or r.cidr or "" for r in zone.egress
            if (r.host and r.host.startswith("*.")) or (r.cidr and _broad(r.cidr))]
    if wide:
        findings.append(Finding("network", min(12, 6 * len(wide)), f"broad egress destinations: {', '.join(wide)}"))
    return findings


def _tmpfs(box: _Sandbox) -> list[Finding]:
    total = sum(t.size for t in box.profile.tmpfs)
    weight = _band(total, ((512 * MiB, 8), (128 * MiB, 5), (32 * MiB, 3), (0, 1)))
    return [Finding("tmpfs", weight, f"{total // MiB} MiB of writable tmpfs")] if weight else []


def _limits(box: _Sandbox, host: HostCapacity) -> list[Finding]:
    res = box.profile.resources
    memory_share = res.memory / host.memory_bytes
    cpu_share = res.cpus / host.cpus
    out = []
    weight = _band(memory_share, ((0.5, 10), (0.25, 6), (0.1, 3)))
    if weight:
        out.append(Finding("limits", weight, f"memory limit is {memory_share:.0%} of the host's"))
    weight = _band(cpu_share, ((0.75, 6), (0.5, 4), (0.25, 2)))
    if weight:
        out.append(Finding("limits", weight, f"CPU limit is {cpu_share:.0%} of the host's"))
    weight = _band(res.pids, ((1024, 5), (256, 2)))
    if weight:
        out.append(Finding("limits", weight, f"up to {res.pids} processes"))
    weight = _band(res.nofile, ((4096, 2),))
    if weight:
        out.append(Finding("limits", weight, f"up to {res.nofile} open files"))
    return out


def _secrets(box: _Sandbox) -> list[Finding]:
    if not box.secrets:
        return []
    return [Finding("secrets", min(12, 4 * len(box.secrets)), f"granted secrets: {', '.join(box.secrets)}")]


def _timeout(box: _Sandbox) -> list[Finding]:
    weight = _band(box.timeout_s, ((3600, 5), (600, 3), (60, 1)))
    return [Finding("timeout", weight, f"runs up to {box.timeout_s} s")] if weight else []


def _score(subject: Subject, name: str, profile_name: str, box: _Sandbox, host: HostCapacity) -> Posture:
    findings = [*_capabilities(box), *_seccomp(box), *_network(box), *_tmpfs(box), *_limits(box, host),
                *_secrets(box), *_timeout(box)]
    findings = [f for f in findings if f.weight > 0]
    # Any confined sandbox keeps at least 1: 0 means unconfined, which no valid policy can express.
    score = max(1, 100 - sum(f.weight for f in findings))
    return Posture(subject, name, profile_name, score, tuple(sorted(findings, key=lambda f: -f.weight)))


def _box(snapshot: Snapshot, profile_name: str, zone: str | None = None, timeout_s: int | None = None,
         secrets: tuple[str, ...] = ()) -> _Sandbox:
    spec = snapshot.profiles[profile_name]
    zone_name = zone or spec.zone
    seccomp = None if spec.seccompProfile == RUNTIME_DEFAULT else snapshot.seccomp[spec.seccompProfile]
    return _Sandbox(profile=spec, seccomp_name=spec.seccompProfile, seccomp=seccomp, zone_name=zone_name,
                    zone=snapshot.zones[zone_name], timeout_s=timeout_s or spec.resources.timeoutSeconds,
                    secrets=secrets)


def analyze(snapshot: Snapshot, host: HostCapacity) -> list[Posture]:
    """Every profile, then every node's effective sandbox, strongest first within each kind."""
    profiles = [_score("profile", name, name, _box(snapshot, name), host) for name in snapshot.profiles]
    nodes = [_score("node", name, node.spec.profile,
                    _box(snapshot, node.spec.profile, node.spec.zone, node.spec.timeoutSeconds, node.spec.secrets),
                    host) for name, node in snapshot.nodes.items()]
    return [*sorted(profiles, key=lambda p: (-p.score, p.name)), *sorted(nodes, key=lambda p: (-p.score, p.name))]


def score_changes(old: Snapshot, new: Snapshot, host: HostCapacity) -> list[Change]:
    """How a policy change moves each score, as `policy diff` changes (a lower score widens)."""
    _kinds = {"profile": "SandboxProfile", "node": "Node"}
    before = {(p.subject, p.name): p.score for p in analyze(old, host)}
    after = {(p.subject, p.name): p.score for p in analyze(new, host)}
    out = []
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        if a != b:
            out.append(Change(_kinds[key[0]], key[1], "postureScore", "lowered" if b < a else "raised", a, b,
                              "widens" if b < a else "narrows"))
    return out


def below(postures: list[Posture], min_score: int) -> list[Posture]:
    """The sandboxes `policy validate --min-score N` refuses."""
    return [p for p in postures if p.score < min_score]
