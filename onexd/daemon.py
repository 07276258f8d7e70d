"""The daemon's lifecycle: start the parts in order, serve, reload on SIGHUP and policy changes, stop in order.

Start: lock the state directory, reap what a previous life left, build the parts (onexd/composition.py), recover
job records, load the last good policy and reload the directory, bind the socket (0660, configured group),
watch the policy directory. SIGHUP reloads. SIGTERM/SIGINT: stop accepting jobs, let running ones finish within
the grace period, then cancel and record them, close the socket and remove it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onexd import __version__, systemd
from onexd.api.fdlimit import make_room_for_connections
from onexd.api.metrics_listener import MetricsListener
from onexd.api.server import ApiServer, socket_gid
from onexd.audit.trail import AuditUnavailable
from onexd.composition import RUNTIMES as RUNTIMES
from onexd.composition import Clock, Parts, api_server, build_sinks, compose
from onexd.config import DaemonConfig
from onexd.engine.translate import zone_network_name
from onexd.errors import RuntimeFailure
from onexd.fsutil import lock_state_dir
from onexd.policy.manager import PolicyManager
from onexd.policy.watcher import PolicyWatcher
from onexd.runtime.base import Runtime
from onexd.runtime.docker import DockerRuntime

log = logging.getLogger("onexd.daemon")

SHUTDOWN_GRACE_S = 30.0
MAX_RELOAD_DELAY_S = 2.0
ENGINE_CHECK_S = 10.0


class Daemon:
    def __init__(self, config: DaemonConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self._stop = asyncio.Event()
        self._reload_timer: asyncio.TimerHandle | None = None
        self._reload_first: float | None = None
        self._engine_ok = False
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references to fire-and-forget reloads

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        cfg = self.config
        sinks = build_sinks(cfg)  # a TLS file that cannot be loaded: refused, nothing written
        socket_gid(cfg.socket.group)  # an unknown socket group: refused before the state directory is touched
        make_room_for_connections(cfg.api.maxConnections)  # likewise an open-file limit with no room for them
        lock_fd = lock_state_dir(Path(cfg.stateDir))
        loop = asyncio.get_running_loop()
        parts = compose(cfg, lambda: self._engine_ok, self.clock, sinks)
        if cfg.runtime.backend == "fake":
            log.warning("runtime backend is fake: no container runs and no job is isolated; for tests and "
                        "benchmarks only", extra={"backend": "fake"})
        await self._check_engine(parts.runtime)
        parts.kernel_log.probe()  # forensics: an unreadable kernel log is said once, here
        parts.audit.append("daemon.start", "onexd", "success", {"version": __version__, "pid": os.getpid()})
        parts.jobs.recover()
        first = await asyncio.to_thread(parts.reloader.reload, "startup")
        if parts.policy.state.degraded:
            log.warning("started degraded: some bundles are rejected", extra={"digest": first.digest})
        if parts.pool is not None:  # the first reload configured it; slots fill in the background
            parts.pool.start()
        passed = systemd.listen_socket()
        server = api_server(cfg, parts.api, passed)
        metrics_listener = _metrics_listener(parts)  # first: an address in use stops the start before the socket
        if metrics_listener is not None:
            await metrics_listener.start()
        try:
            await server.start()
        except BaseException:  # a socket that cannot be bound: the listener does not outlive the failed start
            if metrics_listener is not None:
                await metrics_listener.stop()
            raise
        def changed() -> None:  # on watchdog's thread
            loop.call_soon_threadsafe(self._schedule_reload, parts)

        watcher = PolicyWatcher(Path(cfg.policyDir), changed)
        with contextlib.suppress(OSError):
            watcher.start()
        loop.add_signal_handler(signal.SIGHUP, self._spawn, lambda: self._hup_reload(parts))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        engine_task = loop.create_task(self._watch_engine(parts.runtime, lambda: not any(parts.jobs.counts().values())))
        parts.rotation.start()
        parts.shipper.start(cfg.audit.shipEverySeconds)  # one worker per sink: a slow sink never delays another
        log.info("onexd ready", extra={"policy": parts.policy.state.snapshot.digest,
                                       "degraded": parts.policy.state.degraded, "pid": os.getpid(),
                                       "socketActivated": passed is not None, "api": cfg.api.model_dump()})
        systemd.notify(f"READY=1\nSTATUS={self._status(parts.policy)}")
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
            parts.rotation.stop()
            await asyncio.to_thread(parts.shipper.stop)
            engine_task.cancel()
            if metrics_listener is not None:
                await metrics_listener.stop()
            await self._shutdown(parts, server)
            os.close(lock_fd)
            log.info("stopped")

    async def _check_engine(self, runtime: Runtime) -> None:
        """Ping the engine and reap what a previous life left; an engine that does not answer is logged."""
        try:
            await asyncio.to_thread(runtime.ping)
            self._engine_ok = True
            reaped = await asyncio.to_thread(runtime.reap)
            if reaped:
                log.warning("reaped leftovers of a previous run", extra={"count": len(reaped)})
        except RuntimeFailure as exc:
            log.error("container engine unavailable; jobs will fail until it answers", extra={"why": str(exc)})

    async def _shutdown(self, parts: Parts, server: ApiServer) -> None:
        """Jobs finish (or are cancelled), zones go, the socket closes, the trail is finalized, files close."""
        await parts.jobs.shutdown(SHUTDOWN_GRACE_S)
        if parts.pool is not None:  # no slot outlives the daemon
            await asyncio.to_thread(parts.pool.stop)
        try:
            await asyncio.to_thread(parts.zones.collect)
            await asyncio.to_thread(parts.zones.stop)
            for zone in parts.policy.state.snapshot.zones:  # unused zone networks go; other processes' jobs stay
                await asyncio.to_thread(parts.runtime.release_network, zone_network_name(zone))
        except RuntimeFailure as exc:
            log.error("zone proxies not removed", extra={"why": str(exc)})
        await server.stop()
        # Each step on its own: a failing disk must not keep the daemon from stopping.
        try:
            parts.audit.append("daemon.stop", "onexd", "success", {"pid": os.getpid()})
            parts.checkpointer.write("stop")
            await asyncio.to_thread(parts.shipper.flush, SHUTDOWN_GRACE_S / 3)
        except (AuditUnavailable, OSError) as exc:
            log.error("audit trail not finalized at stop", extra={"why": type(exc).__name__})
        parts.audit.close()
        parts.store.close()
        if isinstance(parts.runtime, DockerRuntime):
            parts.runtime.close()

    def stop(self) -> None:
        self._stop.set()

    def _spawn(self, make: Callable[[], Any]) -> None:
        """Run a coroutine in the background, keeping a reference until it is done."""
        self._tasks.add(task := asyncio.get_running_loop().create_task(make()))
        task.add_done_callback(self._tasks.discard)

    async def _hup_reload(self, parts: Parts) -> None:
        systemd.notify(systemd.reloading())
        try:
            await parts.reloader.areload("SIGHUP")
        finally:
            systemd.notify(f"READY=1\nSTATUS={self._status(parts.policy)}")

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

    def _schedule_reload(self, parts: Parts) -> None:
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
            self._spawn(lambda: parts.reloader.areload("watch"))

        self._reload_timer = loop.call_later(delay, fire)

    async def _watch_engine(self, runtime: Runtime, idle: Callable[[], bool] = lambda: True) -> None:
        reap_due = False
        while True:
            await asyncio.sleep(ENGINE_CHECK_S)
            try:
                await asyncio.to_thread(runtime.ping)
                if not self._engine_ok:
                    log.info("container engine reachable again")
                    reap_due = True  # containers of jobs the engine dropped could not be removed while it was away
                if reap_due and idle():  # no job is live: every managed container is a leftover
                    reaped = await asyncio.to_thread(runtime.reap)
                    reap_due = False
                    if reaped:
                        log.warning("reaped leftovers of the engine's absence", extra={"count": len(reaped)})
                self._engine_ok = True
            except RuntimeFailure:
                if self._engine_ok:
                    log.error("container engine unreachable")
                self._engine_ok = False


def _metrics_listener(parts: Parts) -> MetricsListener | None:
    """The metrics-only TCP listener when `metrics.listen` is set (off by default)."""
    address = parts.config.metrics.address()
    return MetricsListener(parts.metrics, *address, parts.config.api) if address is not None else None


def serve(config: DaemonConfig) -> None:
    asyncio.run(Daemon(config).run())
