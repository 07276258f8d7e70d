"""The optional metrics-only TCP listener (`metrics.listen`): GET /metrics for Prometheus, nothing else.

TCP carries no peer credentials, so this listener authenticates no one: it serves the exposition text and
answers every other path 404 and every other method 405. It is off by default; keep it on loopback or a
monitoring network (a listener on any other address is logged as a warning at start). Anyone who reaches it is
held to the API socket's bounds (server.py: header and body timeouts, bodies never inflated) and to
MAX_METRICS_CONNECTIONS at once, so a flood of TCP connections cannot take the daemon's descriptors.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from onexd.api.errors import error_response
from onexd.api.routes.health import metrics_response
from onexd.api.server import handler_options, protocol_factory
from onexd.config import ApiConfig
from onexd.errors import ConfigError
from onexd.metrics import Metrics

log = logging.getLogger("onexd.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS = web.AppKey("metrics", Metrics)
MAX_METRICS_CONNECTIONS = 16  # Prometheus scrapes over one; counted in fdlimit.RESERVED_FILES


async def _metrics(request: web.Request) -> web.Response:
    return metrics_response(request.app[METRICS])


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return error_response(exc, "-")


def build_metrics_app(metrics: Metrics) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=1024)
    app[METRICS] = metrics
    app.router.add_route("GET", "/metrics", _metrics)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsListener:
    """Serves build_metrics_app on host:port between start() and stop()."""

    def __init__(self, metrics: Metrics, host: str, port: int, limits: ApiConfig | None = None) -> None:
        self.metrics, self.host, self.port = metrics, host, port
        # The API's timeouts (the daemon's `api` section), with a connection cap of its own.
        self.limits = (limits or ApiConfig()).model_copy(update={"maxConnections": MAX_METRICS_CONNECTIONS})
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        runner = web.AppRunner(build_metrics_app(self.metrics), access_log=None, handle_signals=False,
                               **handler_options(self.limits))
        await runner.setup()
        assert runner.server is not None
        try:  # as aiohttp's TCPSite does, with the API's protocol factory (connection cap, timeouts)
            self._listener = await asyncio.get_running_loop().create_server(
                protocol_factory(runner.server, self.limits), self.host, self.port, reuse_address=True)
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"metrics.listen: cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self._runner = runner
        if not is_loopback(self.host):
            log.warning("metrics listener is not on loopback: anyone who reaches it reads the metrics",
                        extra={"address": f"{self.host}:{self.port}"})
        log.info("metrics listener ready", extra={"address": f"{self.host}:{self.port}"})

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
