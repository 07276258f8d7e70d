"""One table from exceptions to HTTP errors. Bodies are `{"error": {"code", "message", "correlationId"}}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from onexd.errors import (
    ApiKeyExists,
    AuditUnavailable,
    AuthenticationError,
    BodyTimeout,
    BodyTooLarge,
    ConfigError,
    DeliveryError,
    InvalidInput,
    LockedOut,
    NotAccepting,
    NotConfigured,
    NotFound,
    OnexdError,
    PermissionDenied,
    PolicyError,
    RateLimited,
    RequestError,
    RuntimeFailure,
    ServiceUnavailable,
    StorageUnavailable,
    TooManyJobs,
    UsageError,
)

log = logging.getLogger("onexd.api")

# The most specific class first; a code of None means the exception carries its own stable code. Anything not
# listed (or not an OnexdError) is a 500 whose message says nothing internal, logged with its traceback.
ERROR_TABLE: tuple[tuple[type[OnexdError], int, str | None], ...] = (
    (InvalidInput, 400, "invalid-input"),
    (BodyTooLarge, 413, None),
    (BodyTimeout, 408, None),
    (RequestError, 400, None),
    (AuthenticationError, 401, None),
    (LockedOut, 403, "locked-out"),
    (PermissionDenied, 403, "denied"),
    (NotFound, 404, "not-found"),
    (ApiKeyExists, 409, "conflict"),
    (RateLimited, 429, "rate-limited"),
    (TooManyJobs, 429, "too-many-jobs"),
    (NotAccepting, 503, "shutting-down"),
    (AuditUnavailable, 503, "audit-unavailable"),
    (StorageUnavailable, 503, "state-unavailable"),
    (RuntimeFailure, 503, "engine-unavailable"),
    (NotConfigured, 503, "not-configured"),
    (ServiceUnavailable, 503, "unavailable"),
    (DeliveryError, 502, "audit-sink-unreachable"),
    (UsageError, 400, "invalid-request"),
    (PolicyError, 409, "policy-invalid"),
    (ConfigError, 500, "config"),
    (OnexdError, 500, "internal"),
)


def status_and_code(exc: OnexdError) -> tuple[int, str]:
    """The HTTP status and stable error code of one of our errors, from ERROR_TABLE."""
    status, code = next((s, c) for cls, s, c in ERROR_TABLE if isinstance(exc, cls))
    return status, code if code is not None else str(getattr(exc, "code", "internal"))


# What a 401 names (RFC 9110 §11.6.1): the schemes a caller may retry with (the Unix peer needs no header).
WWW_AUTHENTICATE = 'Bearer realm="onexd", ApiKey realm="onexd", header="X-API-Key"'


def _http_error(exc: web.HTTPException) -> tuple[int, str, str, dict[str, str]]:
    if exc.status == 413:
        return 413, "body-too-large", "request body too large", {}
    if exc.status == 404:
        return 404, "not-found", "no such endpoint", {}
    if isinstance(exc, web.HTTPMethodNotAllowed):  # RFC 9110 §15.5.6: a 405 lists the methods that are allowed
        allow = ", ".join(sorted(exc.allowed_methods))
        return 405, "method-not-allowed", f"method {exc.method} not allowed here (allowed: {allow})", {"Allow": allow}
    return exc.status, "http-error", exc.reason, {}


def _extra(exc: OnexdError) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body fields some errors carry besides code and message."""
    if isinstance(exc, InvalidInput):
        return {}, {"details": exc.errors}
    if isinstance(exc, RequestError) and exc.details:
        return {}, {"details": exc.details}
    if isinstance(exc, PermissionDenied) and exc.reasons:
        return {}, {"reasons": exc.reasons}
    if isinstance(exc, (TooManyJobs, RateLimited)):
        return {"Retry-After": str(exc.retry_after_s)}, {}
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": WWW_AUTHENTICATE}, {}
    return {}, {}


def error_response(exc: BaseException, correlation_id: str) -> web.Response:
    """The answer for any exception a handler raised: a 4xx or 503 that says what, or a 500 that says nothing
    internal and whose traceback is logged under the correlation id."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, web.HTTPException):
        status, code, message, headers = _http_error(exc)
    elif isinstance(exc, OnexdError):
        status, code = status_and_code(exc)
        headers, extra = _extra(exc)
        # 503s say what is unavailable (safe and useful); a 500 says nothing about how the code failed.
        message = str(exc) if status < 500 or isinstance(exc, ServiceUnavailable) else \
            "internal error; see the daemon log for this correlation id"
    else:
        status, code, message = 500, "internal", "internal error; see the daemon log for this correlation id"
    if status >= 500 and not isinstance(exc, ServiceUnavailable):
        log.error("unhandled error", exc_info=exc)
    body = {"error": {"code": code, "message": message, "correlationId": correlation_id, **extra}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers={**headers, "X-Correlation-Id": correlation_id})
