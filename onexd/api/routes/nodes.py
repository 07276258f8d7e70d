"""/v1/nodes: what a caller may run — each node's version, bundle, profile, zone, secrets (names) and input schema."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from onexd.api.authz import require
from onexd.api.bodies import json_response
from onexd.api.context import context, principal_of
from onexd.errors import NotFound
from onexd.policy.snapshot import NodeInfo, Snapshot


def node_view(snapshot: Snapshot, node: NodeInfo) -> dict[str, Any]:
    """A node as operators and clients read it: never a secret's value or source, only its name."""
    spec = node.spec
    profile = snapshot.profiles.get(spec.profile)
    return {"name": node.name, "version": str(spec.version), "bundle": node.bundle, "description": spec.description,
            "profile": spec.profile, "zone": spec.zone or (profile.zone if profile is not None else None),
            "secrets": list(spec.secrets), "timeoutSeconds": spec.timeoutSeconds, "sourceDigest": node.source_digest,
            "inputSchema": spec.inputSchema}


async def list_nodes(request: web.Request) -> web.Response:
    ctx = context(request)
    snapshot = ctx.policy.state.snapshot  # one read: the permission and the listing name the same policy
    await require(ctx, snapshot, principal_of(request), "nodes:read")
    return json_response({"nodes": [node_view(snapshot, snapshot.nodes[name]) for name in sorted(snapshot.nodes)],
                          "policy": snapshot.digest})


async def get_node(request: web.Request) -> web.Response:
    ctx = context(request)
    snapshot = ctx.policy.state.snapshot
    await require(ctx, snapshot, principal_of(request), "nodes:read")
    node = snapshot.nodes.get(request.match_info["name"])
    if node is None:
        raise NotFound(f"no node named {request.match_info['name']!r} in the active policy")
    return json_response(node_view(snapshot, node))


ROUTES = [
    ("GET", "/v1/nodes", list_nodes),
    ("GET", "/v1/nodes/{name}", get_node),
]
