"""The composition root: every part of the daemon built from the config and an injected clock.

Only this module (and the CLI) chooses concrete classes. Building the parts starts nothing: no task, no
socket, no thread; the daemon's lifecycle (onexd/daemon.py) starts and stops them in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onexd import API_VERSION, __version__
from onexd.api.context import ApiContext, Credentials, failure_limiter
from onexd.api.lockout import strike
from onexd.api.ratelimit import RateLimiter
from onexd.api.server import ApiServer
from onexd.audit.checkpoints import Checkpointer, verify_trail
from onexd.audit.events import key_event_type
from onexd.audit.shipper import Shipper
from onexd.audit.sinks import Sink, make_sink
from onexd.audit.trail import AuditLog, AuditUnavailable
from onexd.config import DaemonConfig
from onexd.crypto import load_public_key
from onexd.identity.apikeys import ApiKeyStore
from onexd.identity.authn import Authenticator
from onexd.identity.lockout import LockoutTracker
from onexd.identity.tokens import TokenService
from onexd.jobs.pool import WarmPool, warm_slots_of
from onexd.jobs.records import JobRecord
from onexd.jobs.reloader import PolicyReloader
from onexd.jobs.runner import JobRunner, NodeStore
from onexd.jobs.service import JobService
from onexd.jobs.store import JobStore
from onexd.jobs.zones import EgressZones
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key
from onexd.metrics import Metrics
from onexd.policy.loader import LoadLimits
from onexd.policy.manager import PolicyManager
from onexd.policy.pipeline import Trust
from onexd.policy.snapshot import Snapshot
from onexd.policy.store import BundleStore
from onexd.policy.yamlsafe import YamlLimits
from onexd.runtime.base import Runtime
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.fake import FakeRuntime
from onexd.runtime.kmsg import KernelLog
from onexd.scheduler import RotationScheduler
from onexd.secrets.staging import check_staging_dir, default_staging_dir
from onexd.secrets.store import EncryptedStore

log = logging.getLogger("onexd.daemon")
Clock = Callable[[], float]


def _kubernetes_runtime(c: DaemonConfig) -> Runtime:
    # Imported here: the kubernetes client is loaded only by daemons that use it.
    from onexd.runtime.kubernetes import KubernetesRuntime, KubernetesSettings

    k = c.runtime.kubernetes
    return KubernetesRuntime(KubernetesSettings(
        namespace=k.namespace, kubeconfig=k.kubeconfig or os.environ.get("KUBECONFIG"), in_cluster=k.inCluster,
        context=k.context, seccomp_dir=k.seccompDir, request_timeout_s=float(k.requestTimeoutSeconds)))

# Backends by name; `fake` runs no containers (for API tests and benchmarks of the daemon itself).
RUNTIMES: dict[str, Callable[[DaemonConfig], Runtime]] = {
    "docker": lambda c: DockerRuntime(c.runtime.dockerHost),
    "fake": lambda c: FakeRuntime(),
    "kubernetes": _kubernetes_runtime,
}


@dataclass
class Parts:
    """Everything the daemon runs, wired together."""

    config: DaemonConfig
    runtime: Runtime
    metrics: Metrics
    audit: AuditLog
    keystore: Keystore
    checkpointer: Checkpointer
    rotation: RotationScheduler
    store: JobStore
    zones: EgressZones
    pool: WarmPool | None  # None: off (maxContainers 0) or a backend without slots
    jobs: JobService
    policy: PolicyManager
    reloader: PolicyReloader
    shipper: Shipper
    api: ApiContext
    kernel_log: KernelLog


def build_sinks(config: DaemonConfig) -> list[Sink]:
    """The audit sinks, built before anything touches the state directory: a TLS file that cannot be loaded
    (or a missing authorization credential) is a ConfigError with nothing written."""
    return [make_sink(s) for s in config.audit.sinks]


def trust_of(config: DaemonConfig) -> Trust:
    keys = tuple(load_public_key(Path(p)) for p in config.trust.bundleKeys)
    return Trust(require_signed=config.trust.requireSignedBundles, keys=keys)


def compose(config: DaemonConfig, engine_ok: Callable[[], bool], clock: Clock = time.time,
            sinks: list[Sink] | None = None) -> Parts:
    """Build the parts (the sinks too, unless built already by build_sinks). The trail comes first: keys,
    secrets, jobs and reloads all record into it."""
    cfg, state_dir = config, Path(config.stateDir)
    sinks = build_sinks(cfg) if sinks is None else sinks  # before anything touches the state directory
    runtime = RUNTIMES[cfg.runtime.backend](cfg)
    staging = check_staging_dir(Path(cfg.secrets.stagingDir) if cfg.secrets.stagingDir else default_staging_dir())
    metrics = Metrics(__version__, API_VERSION)
    checkpointers: list[Checkpointer] = []  # the checkpointer signs with the keystore, which records into the trail
    shippers: list[Shipper] = []  # the shipper reads the trail, built after it

    def on_audit(event: dict[str, Any]) -> None:
        metrics.audit_events.inc()
        for shipper in shippers:
            shipper.wake()  # per-sink lag drops back to 0 without waiting for the next tick
        for checkpointer in checkpointers:
            checkpointer.observe(event)

    def on_rotate(last_seq: int) -> None:  # a segment closes: checkpoint exactly there
        for checkpointer in checkpointers:
            checkpointer.at_boundary(last_seq)

    audit = AuditLog(state_dir / "audit", cfg.audit.maxSegmentBytes, cfg.audit.keepSegments,
                     enforced=cfg.audit.delivery == "enforced", clock=clock, on_event=on_audit,
                     on_dropped=metrics.trail_dropped, on_rotate=on_rotate)

    def key_event(kind: str, data: dict[str, Any]) -> None:
        log.info(kind, extra=data)
        try:
            audit.append(key_event_type(kind), "onexd", "success", data)
        except AuditUnavailable:
            log.error("key event not audited", extra={"event": kind})

    master = load_master_key(state_dir)
    keystore = Keystore(state_dir / "keys" / "keystore.json", master, cfg.auth.tokens.algorithm, clock=clock,
                        on_event=key_event)
    checkpointers.append(Checkpointer(audit, keystore.signing_key, cfg.audit.checkpoint.everyEvents, clock=clock))
    secret_store = EncryptedStore(state_dir / "secrets" / "store.json", master, clock=clock, on_event=key_event)
    rotation = RotationScheduler(cfg, keystore, secret_store)
    zones = EgressZones(runtime, state_dir, cfg.runtime.egressNetwork, on_refusal=_egress_refused(audit, metrics))
    kernel_log = KernelLog(clock=clock)  # forensics: names the system calls seccomp blocked in jobs
    pool = _warm_pool(cfg, runtime, staging, state_dir, audit, clock, lambda: jobs.counts()["queued"])
    runner = JobRunner(runtime, state_dir, staging, clock=clock, secret_store=secret_store, zones=zones,
                       syscall_evidence=kernel_log, on_secret_access=lambda job, name, source: audit.append(
                           "secret.accessed", None, "success", {"job": job, "secret": name, "source": source}),
                       pool=pool)
    store = JobStore(state_dir / "jobs.sqlite3")
    jobs = JobService(runner, store, cfg.concurrency, audit=audit, metrics=metrics)
    limits = LoadLimits(yaml=YamlLimits(max_file_bytes=cfg.limits.maxFileBytes),
                        max_bundle_bytes=cfg.limits.maxBundleBytes, max_bundle_files=cfg.limits.maxBundleFiles)
    policy = PolicyManager(Path(cfg.policyDir), BundleStore(state_dir / "policy"), trust_of(cfg), limits)
    reloader = PolicyReloader(policy, audit, metrics, zones, runtime, pool)
    shippers.append(Shipper(audit, sinks, state_dir / "audit-cursors.json",
                            batch_sizes={s.name: s.batchSize for s in cfg.audit.sinks}, observer=metrics))
    credentials = Credentials(
        tokens=TokenService(keystore, cfg.auth), keystore=keystore,
        apikeys=ApiKeyStore(state_dir / "apikeys.json", cfg.auth.apiKeys.defaultTTLDays, cfg.auth.apiKeys.warnDays,
                            clock=clock),
        rotate_signing=rotation.rotate_signing_keys, rotate_store=rotation.rotate_store)
    api = ApiContext(policy=policy, jobs=jobs,
                     limiter=RateLimiter(cfg.auth.rateLimit.requestsPerMinute, cfg.auth.rateLimit.burst),
                     reload=reloader.areload, engine_ok=engine_ok, credentials=credentials, audit=audit,
                     metrics=metrics, verify_audit=lambda: verify_trail(audit.dir, keystore.public_key).as_dict(),
                     zones=zones.zones, pool=pool.state if pool is not None else None,
                     max_body_bytes=cfg.limits.maxRequestBytes, backend=cfg.runtime.backend,
                     authenticator=Authenticator(credentials.tokens, credentials.apikeys), clock=clock,
                     limits=cfg.api, failures=failure_limiter(cfg.api))
    if cfg.lockout.enabled:
        _lockout(api, jobs, cfg, clock)
    parts = Parts(config=cfg, runtime=runtime, metrics=metrics, audit=audit, keystore=keystore,
                  checkpointer=checkpointers[0], rotation=rotation, store=store, zones=zones, pool=pool, jobs=jobs,
                  policy=policy, reloader=reloader, shipper=shippers[0], api=api, kernel_log=kernel_log)
    _gauges_and_schedules(parts, clock)
    return parts


def api_server(config: DaemonConfig, api: ApiContext, passed: socket.socket | None) -> ApiServer:
    """The API server on the configured socket (or the one systemd passed), with the configured bounds on
    hostile callers (`api`: connections at once, the header timeout)."""
    return ApiServer(api, Path(config.socket.path), int(config.socket.mode, 8), config.socket.group, passed,
                     limits=config.api)


def _lockout(api: ApiContext, jobs: JobService, config: DaemonConfig, clock: Clock) -> None:
    """Incident response: N denials or blocked syscalls within T lock a principal out (onexd.api.lockout)."""
    api.lockout = LockoutTracker(config.lockout.threshold, config.lockout.windowSeconds, config.lockout.lockSeconds,
                                 clock=clock)

    async def blocked(record: JobRecord) -> None:
        name = record.blocked_syscall.get("name") if isinstance(record.blocked_syscall, dict) else None
        await strike(api, record.principal, f"blocked syscall {name or 'unknown'}")

    jobs.on_blocked_syscall = blocked


def _warm_pool(cfg: DaemonConfig, runtime: Runtime, staging: Path, state_dir: Path, audit: AuditLog, clock: Clock,
               jobs_waiting: Callable[[], int]) -> WarmPool | None:
    """The warm pool, when the host allows slots and the backend has them. Slot history goes to the trail."""
    slots = warm_slots_of(runtime)
    if slots is None or cfg.pool.maxContainers == 0:
        return None
    nodes = NodeStore(state_dir / "nodes")

    def node_source(snapshot: Snapshot, node: str) -> str | None:
        info = snapshot.nodes[node]
        return str(nodes.materialize(info)) if info.has_source else None

    def on_event(type_: str, data: dict[str, Any], digest: str) -> None:
        try:
            audit.append(type_, "onexd", "success", data, digest)
        except AuditUnavailable:
            log.error("pool event not audited", extra={"event": type_, "slot": data.get("slot")})

    return WarmPool(slots, runtime, cfg.pool, staging, node_source, clock=clock, audit_slot=on_event,
                    jobs_waiting=jobs_waiting)


def _egress_refused(audit: AuditLog, metrics: Metrics) -> Callable[[dict[str, Any]], None]:
    """What an egress proxy's refusal becomes: a security-event count and an audit event."""
    def refused(event: dict[str, Any]) -> None:
        metrics.security_events.labels("egress_refused", "medium").inc()
        with contextlib.suppress(AuditUnavailable):
            audit.append("egress.refused", None, "denied",
                         {"job": event.get("job"), "zone": event.get("zone"),
                          "destination": f"{event.get('host')}:{event.get('port')}", "why": event.get("reason")})
    return refused


def _gauges_and_schedules(parts: Parts, clock: Clock) -> None:
    cfg, metrics, shipper, keystore = parts.config, parts.metrics, parts.shipper, parts.keystore
    metrics.add_gauge("onexd_audit_shipping_lag_events", "Events not yet acknowledged by each sink.", "sink",
                      lambda: {k: float(v) for k, v in shipper.lag().items()})
    metrics.add_gauge("onexd_signing_key_age_seconds", "Age of the active signing key.", "kid",
                      lambda: {e.kid: clock() - (e.activated_at or e.created_at)
                               for e in keystore.entries() if e.state == "active"})
    _state_gauges(parts)
    parts.rotation.every(cfg.audit.checkpoint.everySeconds, "audit checkpoint", parts.checkpointer.write, "interval")
    parts.rotation.every(2, "egress refusals", parts.zones.collect)
    # shipping is not scheduled here: the shipper runs one worker per sink (started by the daemon)
    if parts.pool is not None:
        _pool_gauges(metrics, parts.pool)


def _pool_gauges(metrics: Metrics, pool: WarmPool) -> None:
    """Pool size, claims, misses, refills and the oldest idle slot's age, per target (node:x, profile:y)."""
    def by_target(field: str) -> Callable[[], dict[str, float]]:
        return lambda: {s["target"]: float(s[field]) for s in pool.state()}

    metrics.add_gauge("onexd_pool_idle_slots", "Warm slots waiting, per target.", "target", by_target("idle"))
    metrics.add_gauge("onexd_pool_size", "Warm slots wanted, per target.", "target", by_target("size"))
    metrics.add_gauge("onexd_pool_claims", "Jobs that ran in a warm slot, per target.", "target",
                      by_target("claims"))
    metrics.add_gauge("onexd_pool_misses", "Jobs of a pooled target that found no warm slot.", "target",
                      by_target("misses"))
    metrics.add_gauge("onexd_pool_refills", "Warm slots created, per target.", "target", by_target("refills"))
    metrics.add_gauge("onexd_pool_oldest_slot_age_seconds", "Age of the oldest idle slot, per target.", "target",
                      lambda: {s["target"]: max(s["ages"], default=0.0) for s in pool.state()})


def _state_gauges(parts: Parts) -> None:
    """Jobs running and queued, policy health, bundles and zones: read at scrape time from the live parts."""
    metrics, jobs, policy = parts.metrics, parts.jobs, parts.policy
    metrics.add_gauge("onexd_jobs_running", "Jobs running now.", None, lambda: {"": float(jobs.counts()["running"])})
    metrics.add_gauge("onexd_jobs_queued", "Jobs accepted and waiting for a slot.", None,
                      lambda: {"": float(jobs.counts()["queued"])})
    metrics.add_gauge("onexd_job_slots", "Jobs that may run at once (concurrency.maxJobs).", None,
                      lambda: {"": float(parts.config.concurrency.maxJobs)})
    metrics.add_gauge("onexd_policy_degraded", "1 while a bundle in the policy directory is rejected.", None,
                      lambda: {"": 1.0 if policy.state.degraded else 0.0})
    metrics.add_gauge("onexd_policy_bundles", "Bundles by state: active, or rejected (the last good one stays).",
                      "state", lambda: {"active": float(len(policy.state.entries)),
                                        "rejected": float(len(policy.state.rejections))})
    metrics.add_gauge("onexd_network_zones", "Network zones of the active policy, by mode.", "mode",
                      lambda: _count(z.mode for z in policy.state.snapshot.zones.values()))


def _count(values: Iterable[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        out[value] = out.get(value, 0.0) + 1
    return out
