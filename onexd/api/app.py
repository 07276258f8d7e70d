"""The HTTP application: the middleware and the routes of every resource, nothing else.

HTTP/1.1 + JSON over the Unix socket (aiohttp). Routes only wire requests to services; identity, rate limits
and the error table live in the middleware, authorization in authz.py, bodies in bodies.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from onexd.api.context import CTX, ApiContext
from onexd.api.context import Credentials as Credentials
from onexd.api.middleware import errors_and_identity
from onexd.api.routes import audit, credentials, forensics, health, jobs, policy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTES: list[tuple[str, str, Handler]] = [
    *health.ROUTES, *jobs.ROUTES, *policy.ROUTES, *credentials.ROUTES, *audit.ROUTES,
    *forensics.ROUTES,
]


def build_app(ctx: ApiContext) -> web.Application:
    # client_max_size is checked by aiohttp before our code reads the body: a 1 MiB+1 body is a 413.
    app = web.Application(middlewares=[errors_and_identity], client_max_size=ctx.max_body_bytes)
    app[CTX] = ctx
    audit.install(app)  # long polls of the trail end at shutdown
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app
