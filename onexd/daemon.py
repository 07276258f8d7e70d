"""The composition root: builds every part from the config and runs the daemon's lifecycle.

Start: lock the state directory, reap what a previous life left, recover job records, load the last good
policy and reload the directory, bind the socket (0660, configured group), watch the policy directory.
SIGHUP reloads. SIGTERM/SIGINT: stop accepting jobs, let running ones finish within the grace period, then
cancel and record them, close the socket and remove it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from onexd import __version__, systemd
from onexd.api.app import ApiContext, Credentials, build_app
from onexd.api.ratelimit import RateLimiter
from onexd.audit.checkpoints import Checkpointer, verify_trail
from onexd.audit.shipper import Shipper, make_sink
from onexd.audit.trail import AuditLog, AuditUnavailable
from onexd.config import DaemonConfig
from onexd.crypto import load_public_key
from onexd.engine.translate import zone_network_name
from onexd.errors import ConfigError, RuntimeFailure
from onexd.identity.apikeys import ApiKeyStore
from onexd.identity.tokens import TokenService
from onexd.jobs.runner import JobRunner
from onexd.jobs.service import JobService
from onexd.jobs.store import JobStore
from onexd.jobs.zones import EgressZones
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key
from onexd.metrics import Metrics
from onexd.policy.loader import LoadLimits
from onexd.policy.manager import PolicyManager, ReloadResult
from onexd.policy.pipeline import Trust
from onexd.policy.store import BundleStore
from onexd.policy.watcher import PolicyWatcher
from onexd.policy.yamlsafe import YamlLimits
from onexd.runtime.base import Runtime
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.fake import FakeRuntime
from onexd.scheduler import RotationScheduler
from onexd.secrets.staging import check_staging_dir, default_staging_dir
from onexd.secrets.store import EncryptedStore

log = logging.getLogger("onexd.daemon")


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
SHUTDOWN_GRACE_S = 30.0
MAX_RELOAD_DELAY_S = 2.0
ENGINE_CHECK_S = 10.0


def lock_state_dir(state_dir: Path) -> int:
    """An exclusive lock held for the daemon's life: a second instance on the same state dir is refused."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / "onexd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"another onexd is running with state directory {state_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def bind_socket(path: Path, mode: int, group: str | None) -> socket.socket:
    """Listen on path with mode and group; a stale socket file is replaced, a live one refused."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"socket path {path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # stale: left by a daemon that did not stop cleanly
        else:
            raise ConfigError(f"another process is serving on {path}")
        finally:
            probe.close()
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    gid = -1
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"socket.group: no group named {group!r}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no window in which the socket is wider than 0600
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.listen(256)
    sock.setblocking(False)
    return sock


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._reload_timer: asyncio.TimerHandle | None = None
        self._reload_first: float | None = None
        self._engine_ok = False
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references to fire-and-forget reloads

    def _trust(self) -> Trust:
        keys = tuple(load_public_key(Path(p)) for p in self.config.trust.bundleKeys)
        return Trust(require_signed=self.config.trust.requireSignedBundles, keys=keys)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        cfg = self.config
        state_dir = Path(cfg.stateDir)
        lock_fd = lock_state_dir(state_dir)
        loop = asyncio.get_running_loop()
        runtime = RUNTIMES[cfg.runtime.backend](cfg)
        try:
            await asyncio.to_thread(runtime.ping)
            self._engine_ok = True
            reaped = await asyncio.to_thread(runtime.reap)
            if reaped:
                log.warning("reaped leftovers of a previous run", extra={"count": len(reaped)})
        except RuntimeFailure as exc:
            log.error("container engine unavailable; jobs will fail until it answers", extra={"why": str(exc)})
        staging = check_staging_dir(Path(cfg.secrets.stagingDir) if cfg.secrets.stagingDir else default_staging_dir())
        metrics = Metrics()
        checkpointer: Checkpointer | None = None

        def on_audit(event: dict[str, Any]) -> None:
            metrics.audit_events.inc()
            if checkpointer is not None:
                checkpointer.observe(event)

        audit = AuditLog(state_dir / "audit", cfg.audit.maxSegmentBytes, cfg.audit.keepSegments,
                         enforced=cfg.audit.delivery == "enforced", on_event=on_audit)

        def key_event(kind: str, data: dict[str, Any]) -> None:
            log.info(kind, extra=data)
            try:
                audit.append("key." + kind.replace(" ", "-"), "onexd", "success", data)
            except AuditUnavailable:
                log.error("key event not audited", extra={"event": kind})

        master = load_master_key(state_dir)
        keystore = Keystore(state_dir / "keys" / "keystore.json", master, cfg.auth.tokens.algorithm,
                            on_event=key_event)
        checkpointer = Checkpointer(audit, keystore.signing_key, cfg.audit.checkpoint.everyEvents)
        secret_store = EncryptedStore(state_dir / "secrets" / "store.json", master, on_event=key_event)
        audit.append("daemon.start", "onexd", "success", {"version": __version__, "pid": os.getpid()})
        rotation = RotationScheduler(cfg, keystore, secret_store)
        credentials = Credentials(
            tokens=TokenService(keystore, cfg.auth), keystore=keystore,
            apikeys=ApiKeyStore(state_dir / "apikeys.json", cfg.auth.apiKeys.defaultTTLDays, cfg.auth.apiKeys.warnDays),
            rotate_signing=rotation.rotate_signing_keys, rotate_store=rotation.rotate_store)
        store = JobStore(state_dir / "jobs.sqlite3")
        runner = JobRunner(runtime, state_dir, staging, secret_store=secret_store,
                           on_secret_access=lambda job, name, source: audit.append(
                               "secret.accessed", None, "success", {"job": job, "secret": name, "source": source}))
        def refused(event: dict[str, Any]) -> None:
            metrics.security_events.labels("egress_refused", "medium").inc()
            with contextlib.suppress(AuditUnavailable):
                audit.append("egress.refused", None, "denied",
                             {"job": event.get("job"), "zone": event.get("zone"),
                              "destination": f"{event.get('host')}:{event.get('port')}", "why": event.get("reason")})

        zones = EgressZones(runtime, state_dir, cfg.runtime.egressNetwork, on_refusal=refused)
        runner.zones = zones
        jobs = JobService(runner, store, cfg.concurrency, audit=audit, metrics=metrics)
        jobs.recover()
        limits = LoadLimits(yaml=YamlLimits(max_file_bytes=cfg.limits.maxFileBytes),
                            max_bundle_bytes=cfg.limits.maxBundleBytes, max_bundle_files=cfg.limits.maxBundleFiles)
        policy = PolicyManager(Path(cfg.policyDir), BundleStore(state_dir / "policy"), self._trust(), limits)
        def audited_reload(reason: str, rollback: frozenset[str] = frozenset()) -> ReloadResult:
            before = policy.state.snapshot.zones
            result = policy.reload(reason, rollback)
            state = policy.state
            metrics.reloads.labels("rejected" if result.rejected else "ok").inc()
            events: list[tuple[str, str | None, str, dict[str, Any] | None, str | None]] = [
                ("policy.activated", "onexd", "success", {"bundle": d, "version": state.entries[d].version,
                                                          "reason": reason}, result.digest)
                for d in result.activated if d in state.entries]
            events += [("policy.rejected", "onexd", "failure",
                        {"bundle": r.name, "version": r.version, "codes": sorted({p.code for p in r.problems}),
                         "reason": reason}, result.digest)
                       for d, r in state.rejections.items() if d in result.rejected]
            events += [("policy.removed", "onexd", "success", {"bundle": d, "reason": reason}, result.digest)
                       for d in result.removed]
            if events:
                audit.append_many(events)
            if result.changed or result.removed:
                after = policy.state.snapshot.zones
                try:
                    zones.update(policy.state.snapshot)
                    for gone in set(before) - set(after):  # a removed zone leaves no network behind
                        runtime.release_network(zone_network_name(gone))
                except RuntimeFailure as exc:
                    log.error("zone update failed", extra={"why": str(exc)})
            return result

        first = await asyncio.to_thread(audited_reload, "startup")
        if policy.state.degraded:
            log.warning("started degraded: some bundles are rejected", extra={"digest": first.digest})

        async def reload(reason: str, rollback: frozenset[str] = frozenset()) -> dict[str, Any]:
            result = await asyncio.to_thread(audited_reload, reason, rollback)
            return {"changed": result.changed, "digest": result.digest, "activated": list(result.activated),
                    "rejected": list(result.rejected), "removed": list(result.removed),
                    "degraded": policy.state.degraded}

        self._reload = reload
        ctx = ApiContext(policy=policy, jobs=jobs,
                         limiter=RateLimiter(cfg.auth.rateLimit.requestsPerMinute, cfg.auth.rateLimit.burst),
                         reload=reload, engine_ok=lambda: self._engine_ok, credentials=credentials,
                         audit=audit, metrics=metrics,
                         verify_audit=lambda: verify_trail(audit.dir, keystore.public_key).as_dict(),
                         zones=zones.zones,
                         max_body_bytes=cfg.limits.maxRequestBytes)
        shipper = Shipper(audit, [make_sink(s) for s in cfg.audit.sinks], state_dir / "audit-cursors.json",
                          batch_size=min((s.batchSize for s in cfg.audit.sinks), default=500))
        metrics.add_gauge("onexd_audit_shipping_lag_events", "Events not yet acknowledged by each sink.", "sink",
                          lambda: {k: float(v) for k, v in shipper.lag().items()})
        metrics.add_gauge("onexd_signing_key_age_seconds", "Age of the active signing key.", "kid",
                          lambda: {e.kid: time.time() - (e.activated_at or e.created_at)
                                   for e in keystore.entries() if e.state == "active"})
        rotation.every(cfg.audit.checkpoint.everySeconds, "audit checkpoint", checkpointer.write, "interval")
        rotation.every(2, "egress refusals", zones.collect)
        if cfg.audit.sinks:
            rotation.every(cfg.audit.shipEverySeconds, "audit shipping", shipper.ship)
        app = build_app(ctx)
        app_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await app_runner.setup()
        socket_path = Path(cfg.socket.path)
        passed = systemd.listen_socket()
        sock = passed if passed is not None else bind_socket(socket_path, int(cfg.socket.mode, 8), cfg.socket.group)
        site = web.SockSite(app_runner, sock)
        await site.start()
        def changed() -> None:  # on watchdog's thread
            loop.call_soon_threadsafe(self._schedule_reload)

        watcher = PolicyWatcher(Path(cfg.policyDir), changed)
        with contextlib.suppress(OSError):
            watcher.start()
        async def hup_reload() -> None:
            systemd.notify(systemd.reloading())
            try:
                await reload("SIGHUP")
            finally:
                systemd.notify(f"READY=1\nSTATUS={self._status(policy)}")

        def on_hup() -> None:
            self._tasks.add(task := loop.create_task(hup_reload()))
            task.add_done_callback(self._tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        engine_task = loop.create_task(self._watch_engine(runtime))
        rotation.start()
        log.info("onexd ready", extra={"policy": policy.state.snapshot.digest, "degraded": policy.state.degraded,
                                       "pid": os.getpid(), "socketActivated": passed is not None})
        systemd.notify(f"READY=1\nSTATUS={self._status(policy)}")
        watchdog = systemd.watchdog_interval_s()
        if watchdog is not None:
            self._tasks.add(loop.create_task(self._watchdog(watchdog)))
        if ready is not None:
            ready()
        try:
            await self._stop.wait()
        finally:
            log.info("stopping", extra={"graceSeconds": SHUTDOWN_GRACE_S})
            systemd.notify("STOPPING=1\nSTATUS=stopping: letting running jobs finish")
            for task in list(self._tasks):
                task.cancel()
            watcher.stop()
            rotation.stop()
            engine_task.cancel()
            await jobs.shutdown(SHUTDOWN_GRACE_S)
            try:
                await asyncio.to_thread(zones.collect)
                await asyncio.to_thread(zones.stop)
                for zone in policy.state.snapshot.zones:  # unused zone networks go; other processes' jobs stay
                    await asyncio.to_thread(runtime.release_network, zone_network_name(zone))
            except RuntimeFailure as exc:
                log.error("zone proxies not removed", extra={"why": str(exc)})
            await app_runner.cleanup()
            if passed is None:  # a socket systemd passed stays: it is systemd's
                socket_path.unlink(missing_ok=True)
            # Each step on its own: a failing disk must not keep the daemon from stopping.
            try:
                audit.append("daemon.stop", "onexd", "success", {"pid": os.getpid()})
                checkpointer.write("stop")
                if cfg.audit.sinks:
                    await asyncio.to_thread(shipper.ship)
            except (AuditUnavailable, OSError) as exc:
                log.error("audit trail not finalized at stop", extra={"why": type(exc).__name__})
            audit.close()
            store.close()
            if isinstance(runtime, DockerRuntime):
                runtime.close()
            os.close(lock_fd)
            log.info("stopped")

    def stop(self) -> None:
        self._stop.set()

    @staticmethod
    def _status(policy: PolicyManager) -> str:
        state = policy.state
        health = "degraded: " + ", ".join(sorted(r.name for r in state.rejections.values())) + " rejected" \
            if state.degraded else "ok"
        return f"{health}; policy {state.snapshot.digest[:12]}, {len(state.entries)} bundles"

    async def _watchdog(self, interval_s: float) -> None:
        """WATCHDOG=1 from the event loop itself: a stuck loop stops the pings and systemd restarts us."""
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)

    def _schedule_reload(self) -> None:
        """Debounce watcher events; a steady stream of changes still reloads every MAX_RELOAD_DELAY_S."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._reload_first is None:
            self._reload_first = now
        if self._reload_timer is not None:
            self._reload_timer.cancel()
        delay = self.config.reload.debounceMs / 1000
        delay = max(0.0, min(delay, self._reload_first + MAX_RELOAD_DELAY_S - now))

        def fire() -> None:
            self._reload_first = None
            self._reload_timer = None
            self._tasks.add(task := loop.create_task(self._reload("watch")))
            task.add_done_callback(self._tasks.discard)

        self._reload_timer = loop.call_later(delay, fire)

    async def _watch_engine(self, runtime: Runtime) -> None:
        while True:
            await asyncio.sleep(ENGINE_CHECK_S)
            try:
                await asyncio.to_thread(runtime.ping)
                if not self._engine_ok:
                    log.info("container engine reachable again")
                self._engine_ok = True
            except RuntimeFailure:
                if self._engine_ok:
                    log.error("container engine unreachable")
                self._engine_ok = False


def serve(config: DaemonConfig) -> None:
    asyncio.run(Daemon(config).run())

