"""Warm-pool shapes, keys and job lines. Pure.

A slot is translate()'s ContainerSpec for its key with the per-job parts set aside (name, job id, command,
timeout, the host path of the secrets directory). A job may claim a slot only when its own translate() spec,
with the same parts set aside, is *equal* to the slot's: the pool can miss, it can never weaken a sandbox.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from onexd.engine.decide import Decision, Sandbox
from onexd.engine.request import JobRequest
from onexd.policy.snapshot import Snapshot
from onexd.spec import JOB_LABEL, LAUNCHER_PATH, POOL_LABEL, SECRETS_MOUNT, ContainerSpec

JOB_ID_ENV = "ONEXD_JOB_ID"
POOL_PRINCIPAL = "onexd-pool"


@dataclass(frozen=True, slots=True)
class PoolTarget:
    """What to keep warm: `node:<name>` or `profile:<name>` (ad-hoc), and how many slots."""

    name: str
    size: int
    request: JobRequest
    decision: Decision


def shape_of(spec: ContainerSpec) -> ContainerSpec:
    """The spec with every per-job part blanked: equal shapes run with equal security settings."""
    return dataclasses.replace(
        spec, name="", command=(),
        env=tuple((k, v) for k, v in spec.env if k != JOB_ID_ENV),
        labels=tuple((k, v) for k, v in spec.labels if k not in (JOB_LABEL, POOL_LABEL)),
        limits=dataclasses.replace(spec.limits, timeout_s=0),
        mounts=tuple(dataclasses.replace(m, source="") if m.target == SECRETS_MOUNT else m for m in spec.mounts))


def pool_key(spec: ContainerSpec, image_id: str) -> str:
    """The key of the slots a job with this spec may claim: its shape (node or profile, seccomp, zone and
    network, limits, mounts, the policy digest in its labels) and the image's id, so a rebuild changes it."""
    return hashlib.sha256(f"{image_id}|{shape_of(spec)!r}".encode()).hexdigest()[:24]


def slot_spec(spec: ContainerSpec, name: str, key: str) -> ContainerSpec:
    """A slot from translate()'s spec (made with the slot's own secrets directory): the same container, waiting
    in the launcher, without a job id, labelled with its key."""
    return dataclasses.replace(
        spec, name=name, command=(LAUNCHER_PATH,),
        env=tuple((k, v) for k, v in spec.env if k != JOB_ID_ENV),
        labels=tuple(sorted([*((k, v) for k, v in spec.labels if k != JOB_LABEL), (POOL_LABEL, key)])))


def _quote(word: str) -> str:
    """Single-quoted for sh; a newline leaves the quotes as "$onexd_nl" (the launcher's newline): one line."""
    return "'" + word.replace("'", "'\\''").replace("\n", "'\"$onexd_nl\"'") + "'"


def job_line(spec: ContainerSpec) -> bytes | None:
    """The one line the launcher evaluates: the job id exported, then `exec argv`. None when a word holds a NUL
    (no argv can): such a job takes the cold path, which refuses it as it always did."""
    job_id = dict(spec.env).get(JOB_ID_ENV, "")
    words = [job_id, *spec.command]
    if any("\0" in w for w in words):
        return None
    return f"export {JOB_ID_ENV}={_quote(job_id)}; exec {' '.join(_quote(w) for w in spec.command)}\n".encode()


def pool_targets(snapshot: Snapshot) -> list[PoolTarget]:
    """Every node and profile asking for a warm pool, with the sandbox decide() gives its jobs (a principal
    changes whether a job may run, never the sandbox it runs in)."""
    targets: list[PoolTarget] = []
    for name, node in sorted(snapshot.nodes.items()):
        size = node.spec.warmPool.size if node.spec.warmPool is not None else 0
        if size <= 0:
            continue
        profile = snapshot.profiles.get(node.spec.profile)
        if profile is None:
            continue
        limit = min(node.spec.timeoutSeconds or profile.resources.timeoutSeconds, profile.resources.timeoutSeconds)
        box = Sandbox(profile=node.spec.profile, zone=node.spec.zone or profile.zone, secrets=node.spec.secrets,
                      timeout_s=limit, image=profile.image, user=profile.user)
        targets.append(_target(snapshot, f"node:{name}", size, JobRequest(node=name), box))
    for name, profile in sorted(snapshot.profiles.items()):
        size = profile.warmPool.size if profile.warmPool is not None else 0
        if size <= 0:
            continue
        box = Sandbox(profile=name, zone=profile.zone, secrets=(), timeout_s=profile.resources.timeoutSeconds,
                      image=profile.image, user=profile.user)
        targets.append(_target(snapshot, f"profile:{name}", size, JobRequest(profile=name, command=("true",)), box))
    return targets


def _target(snapshot: Snapshot, name: str, size: int, request: JobRequest, box: Sandbox) -> PoolTarget:
    decision = Decision(True, (), POOL_PRINCIPAL, request.target, snapshot.digest, sandbox=box,
                        bundle_versions=snapshot.bundle_versions)
    return PoolTarget(name, size, request, decision)
