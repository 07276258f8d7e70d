"""/v1/keys, /v1/tokens, /v1/apikeys: onexd's signing keys, the tokens it issues, API keys."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from onexd.api.authz import event, require
from onexd.api.bodies import ApiKeyBody, RotateBody, TokenBody, json_response, read_body
from onexd.api.context import Credentials, context, principal_of
from onexd.errors import NotConfigured
from onexd.timestamps import iso

log = logging.getLogger("onexd.api")


def _creds(request: web.Request) -> Credentials:
    creds = context(request).credentials
    if creds is None:
        raise NotConfigured("keys and credentials are not available in this daemon")
    return creds


async def _require(request: web.Request, permission: str) -> None:
    ctx = context(request)
    await require(ctx, ctx.policy.state.snapshot, principal_of(request), permission)


async def jwks(request: web.Request) -> web.Response:
    return json_response(_creds(request).keystore.jwks())


async def list_keys(request: web.Request) -> web.Response:
    await _require(request, "keys:read")
    return json_response({"keys": [e.public() for e in _creds(request).keystore.entries()]})


async def rotate_keys(request: web.Request) -> web.Response:
    await _require(request, "keys:rotate")
    body = await read_body(request, RotateBody, empty_ok=True)
    creds = _creds(request)
    reason = f"api:{principal_of(request).display}"
    if body.target == "signing":
        kid = await asyncio.to_thread(creds.rotate_signing, reason)
        return json_response({"target": "signing", "activeKid": kid, "jwks": creds.keystore.jwks()})
    key_id = await asyncio.to_thread(creds.rotate_store, reason)
    return json_response({"target": "secrets", "dataKeyId": key_id})


async def issue_token(request: web.Request) -> web.Response:
    await _require(request, "tokens:issue")
    body = await read_body(request, TokenBody)
    token, claims = _creds(request).tokens.issue(body.subject, body.ttlSeconds)  # a bad ttl is a 400
    log.info("token issued", extra={"subject": body.subject, "jti": claims["jti"], "kid": claims["kid"]})
    await event(context(request), principal_of(request), "token.issued",
                {"subject": body.subject, "jti": claims["jti"], "kid": claims["kid"], "expiresAt": claims["exp"]})
    expires = claims["exp"]
    assert isinstance(expires, (int, float))
    return json_response({"token": token, "expiresAt": iso(expires), "subject": body.subject,
                          "kid": claims["kid"]}, 201)


async def create_apikey(request: web.Request) -> web.Response:
    await _require(request, "apikeys:manage")
    body = await read_body(request, ApiKeyBody)
    # A taken name is ApiKeyExists: a 409.
    key, record = _creds(request).apikeys.create(body.name, body.ttlDays * 86400 if body.ttlDays else None)
    log.info("api key created", extra={"apikey": record.name, "keyId": record.key_id})
    await event(context(request), principal_of(request), "apikey.created",
                {"apikey": record.name, "keyId": record.key_id, "expiresAt": record.expires_at})
    return json_response({"name": record.name, "key": key, "keyId": record.key_id, "expiresAt": iso(record.expires_at),
                          "note": "shown once: onexd stores only its hash"}, 201)


async def list_apikeys(request: web.Request) -> web.Response:
    await _require(request, "apikeys:manage")
    return json_response({"apikeys": _creds(request).apikeys.entries()})


async def revoke_apikey(request: web.Request) -> web.Response:
    await _require(request, "apikeys:manage")
    record = _creds(request).apikeys.revoke(request.match_info["name"])  # unknown: ApiKeyNotFound, a 404
    log.info("api key revoked", extra={"apikey": record.name})
    await event(context(request), principal_of(request), "apikey.revoked", {"apikey": record.name})
    return json_response({"name": record.name, "revokedAt": iso(record.revoked_at)})


ROUTES = [
    ("GET", "/v1/keys/jwks", jwks),
    ("GET", "/v1/keys", list_keys),
    ("POST", "/v1/keys/rotate", rotate_keys),
    ("POST", "/v1/tokens", issue_token),
    ("POST", "/v1/apikeys", create_apikey),
    ("GET", "/v1/apikeys", list_apikeys),
    ("DELETE", "/v1/apikeys/{name}", revoke_apikey),
]
