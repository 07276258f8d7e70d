"""API pieces without a daemon: the OpenAPI document matches the routes; rate limits; error mapping."""

from __future__ import annotations

import json

from onexd.api.app import ROUTES
from onexd.api.bodies import depth as _depth
from onexd.api.errors import error_response
from onexd.api.openapi import document
from onexd.api.ratelimit import RateLimiter
from onexd.errors import KubernetesUnsupported, PermissionDenied, RuntimeFailure
from onexd.jobs.runner import InvalidInput
from onexd.jobs.service import TooManyJobs


def test_openapi_documents_exactly_the_routes() -> None:
    """Every routed (method, path) is documented, and every documented operation is routed."""
    routed = {(m.lower(), p) for m, p, _ in ROUTES}
    documented = {(m, p) for p, ops in document()["paths"].items() for m in ops}
    assert routed == documented


def test_openapi_operations_have_ids_and_error_schemas() -> None:
    """Operations are named, and their 4xx answers use the shared Error schema."""
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] and op["summary"], (method, path)
            for status, response in op["responses"].items():
                if status.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_rate_limiter_allows_a_burst_then_refills() -> None:
    """`burst` requests pass at once; the next waits 60/rpm seconds; time refills the bucket."""
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(3)] == [None, None, None]
    wait = limiter.check("a")
    assert wait is not None and 0.9 < wait <= 1.0
    assert limiter.check("b") is None  # per principal
    now[0] += 1.0
    assert limiter.check("a") is None


def test_error_table_maps_exceptions_to_statuses_without_internals() -> None:
    """Known errors get their status and code; unknown ones a 500 that says nothing internal."""
    cases = [(InvalidInput(["/x: bad"]), 400, "invalid-input"), (TooManyJobs("full", 3), 429, "too-many-jobs"),
             (RuntimeFailure("engine down"), 503, "engine-unavailable"),
             (KubernetesUnsupported("caps"), 503, "engine-unavailable"),  # by its base class, RuntimeFailure
             (PermissionDenied("no", reasons=[{"code": "c", "message": "m"}]), 403, "denied"),
             (KeyError("/etc/secret/path"), 500, "internal")]
    for exc, status, code in cases:
        response = error_response(exc, "cid")
        body = json.loads(response.text or "")
        assert (response.status, body["error"]["code"], body["error"]["correlationId"]) == (status, code, "cid")
    assert "/etc/secret" not in (error_response(KeyError("/etc/secret/path"), "c").text or "")
    assert error_response(TooManyJobs("full", 3), "c").headers["Retry-After"] == "3"


def test_json_depth_ignores_brackets_in_strings() -> None:
    """Depth counts structure, not brackets inside string values."""
    assert _depth('{"a": "[[[[[[[[["}') == 1
    assert _depth("[" * 70 + "]" * 70) > 64
    assert _depth('{"a": "\\"[[["}') == 1
