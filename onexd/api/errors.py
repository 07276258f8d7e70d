"""One table from exceptions to HTTP errors. Bodies are `{"error": {"code", "message", "correlationId"}}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from onexd.audit.trail import AuditUnavailable
from onexd.errors import ConfigError, OnexdError, PolicyError, RuntimeFailure, UsageError
from onexd.jobs.runner import InvalidInput
from onexd.jobs.service import NotAccepting, TooManyJobs
from onexd.jobs.store import StorageUnavailable

log = logging.getLogger("onexd.api")


class ApiError(Exception):
    """An error a handler chose to return, with its status and stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


# The most specific class first. Anything not listed is a 500 whose message says nothing internal.
ERROR_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (InvalidInput, 400, "invalid-input"),
    (TooManyJobs, 429, "too-many-jobs"),
    (NotAccepting, 503, "shutting-down"),
    (AuditUnavailable, 503, "audit-unavailable"),
    (StorageUnavailable, 503, "state-unavailable"),
    (RuntimeFailure, 503, "engine-unavailable"),
    (UsageError, 400, "invalid-request"),
    (PolicyError, 409, "policy-invalid"),
    (ConfigError, 500, "config"),
    (OnexdError, 500, "internal"),
)


# 503s whose message is safe and useful to show: they say what is unavailable, not how the code failed.
SERVICE_ERRORS = (RuntimeFailure, NotAccepting, AuditUnavailable, StorageUnavailable)


def _http_error(exc: web.HTTPException) -> tuple[int, str, str]:
    if exc.status == 413:
        return 413, "body-too-large", "request body too large"
    if exc.status == 404:
        return 404, "not-found", "no such endpoint"
    if exc.status == 405:
        return 405, "method-not-allowed", "method not allowed on this endpoint"
    return exc.status, "http-error", exc.reason


def error_response(exc: BaseException, correlation_id: str) -> web.Response:
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, ApiError):
        status, code, message, headers, extra = exc.status, exc.code, exc.message, exc.headers, exc.extra
    elif isinstance(exc, web.HTTPException):
        status, code, message = _http_error(exc)
    else:
        status, code = next(((s, c) for cls, s, c in ERROR_TABLE if isinstance(exc, cls)), (500, "internal"))
        message = str(exc) if status < 500 or isinstance(exc, SERVICE_ERRORS) else \
            "internal error; see the daemon log for this correlation id"
        if isinstance(exc, InvalidInput):
            extra["details"] = exc.errors
        if isinstance(exc, TooManyJobs):
            headers["Retry-After"] = str(exc.retry_after_s)
        if status >= 500 and not isinstance(exc, SERVICE_ERRORS):
            log.error("unhandled error", exc_info=exc)
    body = {"error": {"code": code, "message": message, "correlationId": correlation_id, **extra}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers={**headers, "X-Correlation-Id": correlation_id})
