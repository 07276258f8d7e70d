"""The exception tree: one root, documented whole, mapped by one table per boundary."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import logging
import pkgutil
from pathlib import Path

import pytest

import onexd
from onexd import errors
from onexd.api.errors import ERROR_TABLE, error_response
from onexd.cli.exits import EXIT_DENIED, EXIT_ERROR, EXIT_USAGE, exit_code_for
from onexd.crypto import generate_ed25519, jws_sign, jws_verify
from onexd.errors import (
    ApiFailure,
    ApiKeyExists,
    ApiKeyNotFound,
    ApiKeyRejected,
    AuthenticationError,
    BodyTooLarge,
    JwsMalformed,
    JwsUntrusted,
    NotConfigured,
    OnexdError,
    RateLimited,
    RequestError,
    TokenRequestInvalid,
)

PACKAGE = Path(onexd.__file__).parent


def _all_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(PACKAGE)], "onexd.")]


def test_every_exception_class_in_onexd_derives_from_the_root() -> None:
    """No exception class anywhere in onexd stands outside OnexdError."""
    found = []
    for name in _all_modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found.append(cls)
                assert issubclass(cls, OnexdError), f"{name}.{cls.__name__} is not an OnexdError"
    assert len(found) >= 20


def test_public_exception_classes_are_defined_only_in_errors_py() -> None:
    """Every public exception class is written once, in onexd/errors.py (other modules re-export); a private
    control-flow exception may live beside the code that raises and catches it."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                assert not any(b.endswith(("Error", "Exception", "Failure")) for b in bases), \
                    f"{path}: class {node.name} defines an exception outside errors.py"


def test_errors_docstring_shows_the_whole_tree() -> None:
    """Each class of errors.py appears in its docstring's tree."""
    doc = errors.__doc__ or ""
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__ and cls is not OnexdError:
            assert doc.count(f"── {name} ") == 1, name
    assert "\n    OnexdError\n" in doc


def test_every_error_class_has_an_http_status() -> None:
    """The table maps every class (the root last, as the catch-all) and no class appears twice."""
    classes = [cls for cls, _, _ in ERROR_TABLE]
    assert classes[-1] is OnexdError and len(set(classes)) == len(classes)


def _answer(exc: BaseException) -> tuple[int, dict[str, object], dict[str, str]]:
    response = error_response(exc, "cid")
    return response.status, json.loads(response.text or "")["error"], dict(response.headers)


def test_api_key_errors_map_by_class_not_by_handler() -> None:
    """Rejected key: 401 invalid-api-key; name taken: 409 conflict; unknown name: 404 not-found."""
    assert _answer(ApiKeyRejected("API key expired"))[:2] == (401, {"code": "invalid-api-key",
                                                                     "message": "API key expired",
                                                                     "correlationId": "cid"})
    assert _answer(ApiKeyExists("taken"))[0:2] == (409, {"code": "conflict", "message": "taken",
                                                         "correlationId": "cid"})
    assert _answer(ApiKeyNotFound("no key"))[1]["code"] == "not-found"


def test_request_errors_carry_their_code_status_and_headers() -> None:
    """Body and header errors keep their stable codes; a rate limit sends Retry-After."""
    assert _answer(BodyTooLarge("too big"))[:2][0] == 413
    assert _answer(RequestError("too-deep", "deep"))[1]["code"] == "too-deep"
    assert _answer(AuthenticationError("no", "ambiguous-credentials"))[:1] == (401,)
    status, body, headers = _answer(RateLimited("slow down", 7))
    assert (status, body["code"], headers["Retry-After"]) == (429, "rate-limited", "7")
    assert _answer(TokenRequestInvalid("ttl must be between"))[:1] == (400,)
    status, body, _ = _answer(NotConfigured("no metrics in this daemon"))
    assert (status, body["message"]) == (503, "no metrics in this daemon")


def test_an_unexpected_error_is_a_500_with_correlation_id_and_logged_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """A bug (not an OnexdError) answers 500 without internals and logs its traceback."""
    with caplog.at_level(logging.ERROR, logger="onexd.api"):
        status, body, headers = _answer(ValueError("secret internals"))
    assert (status, body["code"], headers["X-Correlation-Id"]) == (500, "internal", "cid")
    assert "secret internals" not in json.dumps(body)
    assert any(r.exc_info for r in caplog.records)


def test_exit_codes_come_from_one_table() -> None:
    """Usage errors exit 2, a daemon's refusal 3, its failures and anything else 1."""
    assert exit_code_for(errors.UsageError("x")) == EXIT_USAGE
    assert exit_code_for(ApiFailure(403, {"error": {"message": "denied"}})) == EXIT_DENIED
    assert exit_code_for(ApiFailure(503, {})) == EXIT_ERROR
    assert exit_code_for(errors.DaemonUnreachable("down")) == EXIT_ERROR


def test_jws_failures_are_classified_by_class_not_message() -> None:
    """A malformed JWS or a wrong typ is JwsMalformed; an untrusted key is JwsUntrusted, whatever the kid says."""
    key, other = generate_ed25519(), generate_ed25519()
    token = jws_sign({"a": 1}, key, "onexd-test")
    for bad, typ in (("not-a-jws", "onexd-test"), (token, "other-typ")):
        with pytest.raises(JwsMalformed):
            jws_verify(bad, [key.public_key()], typ)
    with pytest.raises(JwsUntrusted, match=r"does not verify|no trusted key"):
        jws_verify(token, [other.public_key()], "onexd-test")


def test_issue_13_16_a_500_logs_its_traceback_under_the_correlation_id() -> None:
    """The JSON line of an unhandled error carries the correlation id and the failing frames, never the
    exception's message (which may name a path)."""
    from onexd.logs import JsonFormatter, correlation_id

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    api_log = logging.getLogger("onexd.api")
    handler = Keep()
    api_log.addHandler(handler)
    token = correlation_id.set("cid-500")
    try:
        where = "/run/secrets/" + "db-password"

        def failing_handler() -> None:
            raise ValueError(where)

        with pytest.raises(ValueError, match="secrets") as info:
            failing_handler()
        assert error_response(info.value, "cid-500").status == 500
        line = json.loads(JsonFormatter().format(records[-1]))
    finally:
        correlation_id.reset(token)
        api_log.removeHandler(handler)
    assert line["level"] == "error" and line["correlationId"] == "cid-500" and line["error"] == "ValueError"
    assert any("in failing_handler" in frame for frame in line["traceback"])
    assert "db-password" not in json.dumps(line)
