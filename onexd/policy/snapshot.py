"""The snapshot: the immutable, merged view of all active bundles, with indexes built once."""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from onexd.policy.loader import ParsedBundle, tree_digest
from onexd.policy.models import (
    CapabilitySpec,
    NetworkZoneSpec,
    NodeSpec,
    RoleBindingDoc,
    SandboxProfileSpec,
    SecretSourceSpec,
    SecretSpec,
)
from onexd.policy.semantics import BUILTIN_ZONE, Definition, Definitions, resolve_seccomp

_NONE_ZONE = NetworkZoneSpec(mode="none")


@dataclass(frozen=True, slots=True)
class BundleInfo:
    name: str
    version: str
    digest: str
    dir_name: str
    root: Path
    description: str


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """A role with its inheritance already flattened."""

    name: str
    bundle: str
    permissions: frozenset[str]
    capabilities: frozenset[str]
    inherited_from: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    """A RoleBinding giving a role to a subject."""

    role: str
    binding: str


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node with its code as validated: the bytes read at load time, not whatever the disk holds later."""

    name: str
    bundle: str
    spec: NodeSpec
    source_files: Mapping[str, bytes]  # path relative to the source directory -> content
    source_digest: str | None  # sha256 over the files, names the content-addressed copy

    @property
    def has_source(self) -> bool:
        return self.spec.source is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    digest: str
    bundles: tuple[BundleInfo, ...]
    roles: Mapping[str, RoleInfo]
    bindings: Mapping[tuple[str, str], tuple[Grant, ...]]
    capabilities: Mapping[str, CapabilitySpec]
    capability_bundle: Mapping[str, str]
    node_capabilities: Mapping[str, frozenset[str]]
    adhoc_capabilities: frozenset[str]
    profiles: Mapping[str, SandboxProfileSpec]
    seccomp: Mapping[str, Mapping[str, Any]]
    zones: Mapping[str, NetworkZoneSpec]
    secret_sources: Mapping[str, SecretSourceSpec]
    secrets: Mapping[str, SecretSpec]
    nodes: Mapping[str, NodeInfo]
    bundle_versions: Mapping[str, str]
    can_execute: frozenset[str]  # roles whose permissions include nodes:execute


def has_permission(granted: frozenset[str], wanted: str) -> bool:
    """`resource:action` with `resource:*` and `*` wildcards."""
    resource = wanted.split(":", 1)[0]
    return wanted in granted or f"{resource}:*" in granted or "*" in granted


def snapshot_digest(bundles: Sequence[BundleInfo]) -> str:
    listing = "".join(f"{b.name}@{b.version} {b.digest}\n" for b in sorted(bundles, key=lambda b: b.name))
    return hashlib.sha256(listing.encode()).hexdigest()


def _flatten_roles(defs: Definitions) -> dict[str, RoleInfo]:
    docs = {name: d.doc.model.spec for name, d in defs.get("Role", {}).items()}  # type: ignore[attr-defined]
    out: dict[str, RoleInfo] = {}
    for name, d in defs.get("Role", {}).items():
        perms: set[str] = set()
        caps: set[str] = set()
        seen: list[str] = []
        todo = [name]
        while todo:  # validated acyclic; `seen` still guards against revisiting shared ancestors
            current = todo.pop()
            if current in seen or current not in docs:
                continue
            seen.append(current)
            perms.update(docs[current].permissions)
            caps.update(docs[current].capabilities)
            todo.extend(docs[current].inherits)
        out[name] = RoleInfo(name=name, bundle=d.bundle.name, permissions=frozenset(perms),
                             capabilities=frozenset(caps), inherited_from=tuple(seen[1:]))
    return out


def _node_info(name: str, d: Definition) -> NodeInfo:
    spec: NodeSpec = d.doc.model.spec  # type: ignore[attr-defined]
    if spec.source is None:
        return NodeInfo(name, d.bundle.name, spec, MappingProxyType({}), None)
    prefix = PurePosixPath(posixpath.normpath(spec.source.path))
    files = {PurePosixPath(rel).relative_to(prefix).as_posix(): data for rel, data in d.bundle.files.items()
             if PurePosixPath(rel).is_relative_to(prefix)}
    return NodeInfo(name, d.bundle.name, spec, MappingProxyType(files), tree_digest(files))


def build_snapshot(bundles: Sequence[ParsedBundle], defs: Definitions) -> Snapshot:
    """Merge validated bundles. Callers pass only bundles that passed every stage."""
    infos = tuple(sorted((BundleInfo(b.name, b.version, b.digest, b.dir_name, b.root,
                                     b.manifest.spec.description if b.manifest else "")
                          for b in bundles), key=lambda i: i.name))

    def specs(kind: str) -> dict[str, Any]:
        return {name: d.doc.model.spec for name, d in defs.get(kind, {}).items()}  # type: ignore[attr-defined]

    bindings: dict[tuple[str, str], list[Grant]] = {}
    for name, d in defs.get("RoleBinding", {}).items():
        model = d.doc.model
        assert isinstance(model, RoleBindingDoc)
        for subject in model.spec.subjects:
            for role in model.spec.roles:
                key = subject.name if subject.issuer is None else f"{subject.issuer}#{subject.name}"  # see Principal
                bindings.setdefault((subject.kind, key), []).append(Grant(role, name))
    capabilities: dict[str, CapabilitySpec] = specs("Capability")
    nodes = {name: _node_info(name, d) for name, d in defs.get("Node", {}).items()}
    node_caps = {node: frozenset(c for c, spec in capabilities.items()
                                 if any(fnmatch.fnmatchcase(node, g) for g in spec.nodes))
                 for node in nodes}
    seccomp: dict[str, Mapping[str, Any]] = {}
    for name, d in defs.get("SeccompProfile", {}).items():
        profile, _ = resolve_seccomp(d.bundle, d.doc)
        assert profile is not None, "validated bundles resolve their seccomp profiles"
        seccomp[name] = MappingProxyType(profile)
    zones = {BUILTIN_ZONE: _NONE_ZONE, **specs("NetworkZone")}
    roles = _flatten_roles(defs)
    return Snapshot(
        digest=snapshot_digest(infos),
        bundles=infos,
        roles=MappingProxyType(roles),
        bindings=MappingProxyType({k: tuple(v) for k, v in bindings.items()}),
        capabilities=MappingProxyType(capabilities),
        capability_bundle=MappingProxyType({n: d.bundle.name for n, d in defs.get("Capability", {}).items()}),
        node_capabilities=MappingProxyType(node_caps),
        adhoc_capabilities=frozenset(c for c, spec in capabilities.items() if spec.adhoc),
        profiles=MappingProxyType(specs("SandboxProfile")),
        seccomp=MappingProxyType(seccomp),
        zones=MappingProxyType(zones),
        secret_sources=MappingProxyType(specs("SecretSource")),
        secrets=MappingProxyType(specs("Secret")),
        nodes=MappingProxyType(nodes),
        bundle_versions=MappingProxyType({b.name: b.version for b in infos}),
        can_execute=frozenset(n for n, r in roles.items() if has_permission(r.permissions, "nodes:execute")),
    )
