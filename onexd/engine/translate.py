"""translate(...) -> ContainerSpec. Pure. Whoever builds the arguments owns the security model: this is it.

Every setting comes from policy; the invariants (no capabilities but allowed adds, read-only root,
no-new-privileges, seccomp, limits, non-root, network only from the zone) are not parameters at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from onexd.engine.decide import Decision
from onexd.engine.request import JobRequest
from onexd.errors import OnexdError
from onexd.policy.limits import (
    CPUS_MAX,
    CPUS_MIN,
    MEMORY_MAX_BYTES,
    MEMORY_MIN_BYTES,
    NOFILE_MAX,
    NOFILE_MIN,
    OUTPUT_MAX_BYTES,
    OUTPUT_MIN_BYTES,
    PIDS_MAX,
    PIDS_MIN,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
)
from onexd.policy.snapshot import Snapshot
from onexd.spec import (
    JOB_LABEL,
    MANAGED_LABEL,
    NODE_MOUNT,
    POLICY_LABEL,
    SECRETS_MOUNT,
    BindMount,
    ContainerSpec,
    Limits,
    NetworkPlacement,
    SeccompSetting,
    TmpfsMount,
)

RUNTIME_DEFAULT = "runtime-default"


@dataclass(frozen=True, slots=True)
class HostPaths:
    """Host directories prepared for the job (by the job service, not by policy)."""

    node_source: str | None = None  # content-addressed, read-only copy of the node's code
    secrets_dir: str | None = None  # memory-backed directory with one file per granted secret


PROXY_ALIAS = "onexd-proxy"
PROXY_PORT = 3128
PROXY_IMAGE = "onexd/runner-python"
PROXY_USER = "65532:65532"


def zone_network_name(zone: str) -> str:
    return f"onexd-zone-{zone}"


def proxy_name(zone: str) -> str:
    return f"onexd-proxy-{zone}"


def proxy_env() -> dict[str, str]:
    """What a job in an egress zone needs to find its proxy (both spellings: tools disagree)."""
    url = f"http://{PROXY_ALIAS}:{PROXY_PORT}"
    env = {"HTTP_PROXY": url, "HTTPS_PROXY": url, "NO_PROXY": "localhost,127.0.0.1"}
    return {**env, **{k.lower(): v for k, v in env.items()}}


def proxy_spec(zone: str, digest: str, code_dir: str, config_dir: str, egress_network: str) -> ContainerSpec:
    """The zone's proxy container: onexd's own code, locked down like a job (read-only, no capabilities,
    no-new-privileges, seccomp, non-root, limits). Its first network is the egress network; the daemon joins
    it to the zone's internal network under the alias jobs use."""
    return ContainerSpec(
        name=proxy_name(zone), image=PROXY_IMAGE, command=("python3", "/app/proxy/egress_proxy.py"),
        user=PROXY_USER, env=(("ONEXD_PROXY_PORT", str(PROXY_PORT)), ("PYTHONDONTWRITEBYTECODE", "1")),
        working_dir="/",
        limits=Limits(memory_bytes=64 * 1024**2, memory_swap_bytes=64 * 1024**2, nano_cpus=500_000_000,
                      pids_limit=64, nofile_limit=4096, timeout_s=0, output_limit_bytes=0),
        seccomp=SeccompSetting(name=RUNTIME_DEFAULT),
        network=NetworkPlacement(zone=zone, mode="egress", network_name=egress_network),
        labels=(("onexd.managed", "true"), ("onexd.policy", digest), ("onexd.role", "proxy"), ("onexd.zone", zone)),
        mounts=(BindMount(code_dir, "/app/proxy", read_only=True),
                BindMount(config_dir, "/etc/onexd-zone", read_only=True)),
    )


def seccomp_json(profile: dict[str, object]) -> str:
    """Canonical JSON, so the same policy always yields the byte-identical engine request."""
    return json.dumps(profile, sort_keys=True, separators=(",", ":"))


def bounded(limits: Limits) -> Limits:
    """limits, if every one is within its floor and ceiling; else refuse (fail closed). The policy models enforce
    the same bounds at load: this guards the engine request against a value Docker reads as unlimited
    (NanoCpus 0, PidsLimit <= 0, a memory near 2^63) whatever produced the snapshot."""
    checks = (
        (MEMORY_MIN_BYTES <= limits.memory_bytes <= MEMORY_MAX_BYTES, "memory"),
        (limits.memory_swap_bytes == limits.memory_bytes, "swap"),
        (round(CPUS_MIN * 1e9) <= limits.nano_cpus <= round(CPUS_MAX * 1e9), "cpus"),
        (PIDS_MIN <= limits.pids_limit <= PIDS_MAX, "pids"),
        (NOFILE_MIN <= limits.nofile_limit <= NOFILE_MAX, "nofile"),
        (TIMEOUT_MIN_S <= limits.timeout_s <= TIMEOUT_MAX_S, "timeout"),
        (OUTPUT_MIN_BYTES <= limits.output_limit_bytes <= OUTPUT_MAX_BYTES, "outputBytes"),
    )
    bad = [what for ok, what in checks if not ok]
    if bad:
        raise OnexdError(f"limits outside their floor and ceiling: {', '.join(bad)}")
    return limits


def translate(snapshot: Snapshot, decision: Decision, request: JobRequest, job_id: str,
              paths: HostPaths = HostPaths()) -> ContainerSpec:
    """The container for an allowed decision. Refuses (raises) for a denied one: fail closed."""
    if not decision.allowed or decision.sandbox is None or decision.snapshot_digest != snapshot.digest:
        raise OnexdError("translate() needs an allowed decision made on this snapshot")
    box = decision.sandbox
    profile = snapshot.profiles[box.profile]
    zone = snapshot.zones[box.zone]
    r = profile.resources
    if request.node is not None:
        node = snapshot.nodes[request.node]
        command = node.spec.command
        has_source = node.spec.source is not None
    else:
        assert request.command is not None
        command, has_source = request.command, False
    mounts: list[BindMount] = []
    if has_source:
        if paths.node_source is None:
            raise OnexdError(f"node {request.node} has source code but no prepared copy was given")
        mounts.append(BindMount(paths.node_source, NODE_MOUNT, read_only=True))
    if box.secrets:
        if paths.secrets_dir is None:
            raise OnexdError("the job is granted secrets but no staging directory was given")
        mounts.append(BindMount(paths.secrets_dir, SECRETS_MOUNT, read_only=True))
    if profile.seccompProfile == RUNTIME_DEFAULT:
        seccomp = SeccompSetting(name=RUNTIME_DEFAULT)
    else:
        seccomp = SeccompSetting(name=profile.seccompProfile,
                                 profile_json=seccomp_json(dict(snapshot.seccomp[profile.seccompProfile])))
    network = NetworkPlacement(zone=box.zone, mode=zone.mode,
                               network_name=None if zone.mode == "none" else zone_network_name(box.zone))
    extra = proxy_env() if zone.mode == "egress" else {}
    env = tuple(sorted({**profile.env, **extra, "ONEXD_JOB_ID": job_id}.items()))
    return ContainerSpec(
        name=f"onexd-job-{job_id}",
        image=profile.image,
        command=tuple(command),
        user=profile.user,
        env=env,
        working_dir=NODE_MOUNT if has_source else "/",
        limits=bounded(Limits(memory_bytes=r.memory, memory_swap_bytes=r.memory, nano_cpus=round(r.cpus * 1e9),
                              pids_limit=r.pids, nofile_limit=r.nofile, timeout_s=box.timeout_s,
                              output_limit_bytes=r.outputBytes)),
        seccomp=seccomp,
        network=network,
        labels=((JOB_LABEL, job_id), (MANAGED_LABEL, "true"), (POLICY_LABEL, snapshot.digest)),
        tmpfs=tuple(TmpfsMount(t.path, t.size, int(t.mode, 8)) for t in profile.tmpfs),
        mounts=tuple(mounts),
        cap_add=tuple(sorted(set(profile.capabilities.add))),
    )
