"""Request bodies: received within a time limit, size, encoding and depth checked before parsing, then validated
into frozen models. The size and time limits come from the daemon config, through ApiContext."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import Field, ValidationError

from onexd.api.context import context
from onexd.engine.request import JobRequest
from onexd.errors import BodyTimeout, BodyTooLarge, RequestError
from onexd.fields import NAME_PATTERN, Model, first_error

MAX_JSON_DEPTH = 64
M = TypeVar("M", bound=Model)


class ExplainBody(Model):
    request: JobRequest
    subject: str | None = None  # KIND:NAME; default: the caller


class TokenBody(Model):
    subject: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,256}$")
    ttlSeconds: int | None = Field(default=None, ge=1)


class ApiKeyBody(Model):
    name: str = Field(pattern=NAME_PATTERN)
    ttlDays: int | None = Field(default=None, ge=1, le=3650)


class ReloadBody(Model):
    allowRollback: tuple[str, ...] = ()  # bundle names that may go back to a lower version (an explicit rollback)


class RotateBody(Model):
    target: Literal["signing", "secrets"] = "signing"


async def read_raw(request: web.Request) -> bytes:
    """The body, read within the configured body timeout (a stalled sender cannot hold a handler forever); a body
    cut short or that its framing does not decode is a 400, not aiohttp's error reaching the 500 path (logged as a
    bug). A compressed body is refused unread: a small one inflates to any size (the server never inflates it)."""
    timeout_s = context(request).limits.bodyTimeoutSeconds
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RequestError("unsupported-encoding", "a compressed request body is not accepted (no Content-Encoding)")
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise BodyTimeout(f"request body not received within {timeout_s:g} seconds") from None
    except ConnectionError:  # the caller hung up mid-body: nobody will read the answer, but it is no 500
        raise RequestError("incomplete-body", "the connection closed before the request body arrived") from None
    except web.RequestPayloadError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        text = (getattr(cause, "message", None) or str(cause)).strip().splitlines()
        raise RequestError("invalid-body", f"request body cannot be read: {text[0][:200] if text else 'malformed'}"
                           ) from None


async def json_body(request: web.Request) -> Any:
    """The body as JSON: within the configured size, UTF-8, not too deep, no NaN or infinities, no lone surrogates."""
    max_bytes = context(request).max_body_bytes
    raw = await read_raw(request)
    if len(raw) > max_bytes:
        raise BodyTooLarge(f"request body over {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("invalid-encoding", f"body is not UTF-8 (byte {exc.start})") from None
    if depth(text) > MAX_JSON_DEPTH:
        raise RequestError("too-deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise RequestError("invalid-json", f"body is not JSON: {exc}") from None
    check_strings(value)
    return value


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (Python's parser accepts them by default)."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A number too large for a double (1e400) is refused, not turned into infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def check_strings(value: Any) -> None:
    """Every string and key must be encodable as UTF-8: a lone surrogate escape (`"\\ud800"`) is refused."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings: list[str] = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for s in strings:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError("invalid-string", "a string holds a lone surrogate (not valid Unicode)") from None


async def read_body(request: web.Request, model: type[M], empty_ok: bool = False) -> M:
    """The body as a model; with empty_ok an empty body is the model's defaults."""
    if empty_ok and not (await read_raw(request)).strip():
        return parse(model, {})
    return parse(model, await json_body(request))


def depth(text: str) -> int:
    """Upper bound of JSON nesting without parsing (brackets inside strings are skipped)."""
    level = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            if level > deepest:
                deepest = level
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif ch in "]}":
            level -= 1
    return deepest


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except TypeError:  # a constraint pydantic could not apply: the field's value is of the wrong kind
        raise RequestError("invalid-request", "a field has a value of the wrong type") from None
    except ValidationError as exc:
        where, message = first_error(exc, "body")
        raise RequestError("invalid-request", f"{where}: {message}",
                           details=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                    for e in exc.errors()[:20]]) from None


def int_query(request: web.Request, name: str, default: int, low: int, high: int | None = None) -> int:
    """An integer query parameter within [low, high]; anything else is a 400 that says the accepted range (never
    the rejected value)."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        accepted = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
        raise RequestError("invalid-request", f"query parameter {name}: expected {accepted}")
    return value


def bool_query(request: web.Request, name: str) -> bool:
    """A boolean query parameter: true/1 or false/0 (absent is false); anything else is a 400."""
    text = request.query.get(name)
    if text is None or text in ("false", "0"):
        return False
    if text in ("true", "1"):
        return True
    raise RequestError("invalid-request", f"query parameter {name}: expected true or false")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda d: json.dumps(d, separators=(",", ":")))
