"""Stage 3: references resolve across the active set, names are unique, inheritance has no cycles."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from onexd.policy.loader import MANIFEST, LoadedDoc, ParsedBundle, safe_resolve
from onexd.policy.models import (
    KNOWN_PERMISSIONS,
    KNOWN_RESOURCES,
    ONEX_PERMISSIONS,
    CapabilityDoc,
    NetworkZoneDoc,
    NodeDoc,
    RoleBindingDoc,
    RoleDoc,
    SandboxProfileDoc,
    SeccompJson,
    SeccompProfileDoc,
    SecretDoc,
    SecretSourceDoc,
)
from onexd.policy.problems import Problem, Severity, problem
from onexd.policy.schema import check_json_schema

BUILTIN_ZONE = "none"
RESERVED_SECCOMP = frozenset({"runtime-default", "unconfined"})


@dataclass(frozen=True, slots=True)
class Definition:
    bundle: ParsedBundle
    doc: LoadedDoc


Definitions = Mapping[str, Mapping[str, Definition]]


def build_definitions(bundles: Sequence[ParsedBundle], incumbents: frozenset[str] = frozenset()
                      ) -> tuple[dict[str, dict[str, Definition]], dict[str, list[Problem]]]:
    """Index documents by kind and name. A name defined twice is an error of the bundle that introduces it:
    an incumbent (already active) bundle keeps its names; otherwise the first bundle in directory order."""
    ordered = sorted(bundles, key=lambda b: (b.dir_name not in incumbents, b.dir_name))
    defs: dict[str, dict[str, Definition]] = {}
    problems: dict[str, list[Problem]] = {b.dir_name: [] for b in bundles}
    for bundle in ordered:
        for doc in bundle.docs:
            existing = defs.setdefault(doc.kind, {}).get(doc.name)
            if existing is not None:
                where = ("in the same bundle" if existing.bundle is bundle
                         else f"already by bundle {existing.bundle.name!r} ({existing.doc.file})")
                problems[bundle.dir_name].append(problem(
                    doc.file, doc.line("/metadata/name"), "/metadata/name", "bundle/name-conflict",
                    f"{doc.kind} {doc.name!r} is defined {where}"))
                continue
            defs[doc.kind][doc.name] = Definition(bundle, doc)
    return defs, problems


def _inside(bundle: ParsedBundle, relpath: str) -> PurePosixPath | None:
    """The normalized path if relpath stays inside the bundle, else None."""
    path = PurePosixPath(relpath)
    if path.is_absolute():
        return None
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    if not parts:
        return None
    normalized = PurePosixPath(*parts)
    # Symbolic links were resolved when the bundle was read; check the directory itself too.
    real = safe_resolve(bundle.root / normalized, strict=False)
    root = safe_resolve(bundle.root, strict=False) or bundle.root
    return normalized if real is not None and real.is_relative_to(root) else None


def resolve_seccomp(bundle: ParsedBundle, doc: LoadedDoc) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The profile JSON of a SeccompProfile (inline, or its file read from the bundle)."""
    spec = doc.model.spec  # type: ignore[attr-defined]
    if spec.profile is not None:
        return spec.profile.model_dump(mode="json", exclude_none=True, exclude_defaults=True), []
    pointer = "/spec/file"
    at = doc.line(pointer)
    rel = _inside(bundle, spec.file)
    if rel is None:
        return None, [problem(doc.file, at, pointer, "ref/path-escape", f"{spec.file!r} leaves the bundle")]
    raw = bundle.files.get(rel.as_posix())
    if raw is None:
        return None, [problem(doc.file, at, pointer, "ref/seccomp-file", f"file {spec.file!r} not found")]
    try:
        data = json.loads(raw)
        return SeccompJson.model_validate(data).model_dump(mode="json", exclude_none=True, exclude_defaults=True), []
    except (ValueError, RecursionError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        why = (f"{'/'.join(str(p) for p in first['loc'])}: {first['msg']}" if first else "not valid JSON")
        return None, [problem(doc.file, at, pointer, "ref/seccomp-file", f"{spec.file}: {why}")]


def _written_names(bundle: ParsedBundle) -> Iterator[tuple[str, str, str]]:
    """(kind, name, file) of every document written in the bundle, schema-valid or not."""
    for _, shown, ydoc in bundle.raw_docs:
        data = ydoc.data
        meta = data.get("metadata") if isinstance(data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(data, dict) and isinstance(data.get("kind"), str) and isinstance(name, str):
            yield data["kind"], name, shown


def unavailable_names(rejected: Sequence[ParsedBundle]) -> dict[str, dict[str, str]]:
    """Kind -> name -> why, for the documents of rejected bundles: a reference to one names that root cause."""
    out: dict[str, dict[str, str]] = {}
    for bundle in rejected:
        for kind, name, _ in _written_names(bundle):
            out.setdefault(kind, {}).setdefault(
                name, f"is defined by bundle {bundle.name!r}, which was rejected (see its errors)")
    return out


def _invalid_names(bundles: Sequence[ParsedBundle], defs: Definitions,
                   unavailable: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, str]]:
    """Kind -> name -> why, for documents that were written but cannot be used: a reference to one of them
    names the root cause (that document's errors, or its rejected bundle), not a missing definition."""
    out: dict[str, dict[str, str]] = {kind: dict(names) for kind, names in (unavailable or {}).items()}
    for bundle in bundles:
        for kind, name, shown in _written_names(bundle):
            if name not in defs.get(kind, {}):
                out.setdefault(kind, {})[name] = f"is invalid (see its errors in {shown})"
    return out


class _Checker:
    def __init__(self, defs: Definitions, invalid: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.defs = defs
        self.invalid = invalid or {}
        self.out: dict[str, list[Problem]] = {}

    def missing(self, kind: str, name: str) -> str:
        why = self.invalid.get(kind, {}).get(name, "does not exist")
        return f"{kind} {name!r} {why}"

    def add(self, d: Definition, pointer: str, code: str, message: str,
            severity: Severity = Severity.ERROR) -> None:
        self.out.setdefault(d.bundle.dir_name, []).append(
            problem(d.doc.file, d.doc.line(pointer), pointer, code, message, severity))

    def ref(self, d: Definition, pointer: str, kind: str, names: Iterable[str], code: str,
            builtin: frozenset[str] = frozenset()) -> None:
        for i, name in enumerate(names):
            if name not in builtin and name not in self.defs.get(kind, {}):
                at = pointer if isinstance(names, str) else f"{pointer}/{i}"
                self.add(d, at, code, self.missing(kind, name))

    def one(self, d: Definition, pointer: str, kind: str, name: str, code: str,
            builtin: frozenset[str] = frozenset()) -> None:
        if name not in builtin and name not in self.defs.get(kind, {}):
            self.add(d, pointer, code, self.missing(kind, name))


def check_semantics(bundles: Sequence[ParsedBundle], defs: Definitions,
                    unavailable: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, list[Problem]]:
    """All stage-3 problems of the candidate set, keyed by bundle directory name. `unavailable` explains names
    that exist but cannot be used (see unavailable_names)."""
    c = _Checker(defs, _invalid_names(bundles, defs, unavailable))
    zones = frozenset({BUILTIN_ZONE})
    for bundle in bundles:
        manifests = [d for d in bundle.docs if d.kind == "Bundle"]
        if len(manifests) != 1 or manifests[0].relpath != MANIFEST:
            where = manifests[1].file if len(manifests) > 1 else bundle.display_path(MANIFEST)
            c.out.setdefault(bundle.dir_name, []).append(problem(
                where, None, "", "bundle/missing-manifest",
                f"bundle needs exactly one Bundle document, in {MANIFEST} (found {len(manifests)})"))
    node_names = list(defs.get("Node", {}))
    for by_name in defs.values():
        for d in by_name.values():
            m = d.doc.model
            if isinstance(m, RoleDoc):
                c.ref(d, "/spec/inherits", "Role", m.spec.inherits, "ref/role")
                c.ref(d, "/spec/capabilities", "Capability", m.spec.capabilities, "ref/capability")
                for i, perm in enumerate(m.spec.permissions):
                    resource = perm.split(":")[0]
                    if perm != "*" and not (perm in KNOWN_PERMISSIONS or perm in ONEX_PERMISSIONS or
                                            (perm.endswith(":*") and resource in KNOWN_RESOURCES)):
                        c.add(d, f"/spec/permissions/{i}", "ref/unknown-permission",
                              f"permission {perm!r} gates nothing in onexd", Severity.WARNING)
            elif isinstance(m, RoleBindingDoc):
                c.ref(d, "/spec/roles", "Role", m.spec.roles, "ref/role")
            elif isinstance(m, CapabilityDoc):
                c.ref(d, "/spec/profiles", "SandboxProfile", m.spec.profiles, "ref/profile")
                c.ref(d, "/spec/zones", "NetworkZone", m.spec.zones, "ref/zone", zones)
                c.ref(d, "/spec/secrets", "Secret", m.spec.secrets, "ref/secret")
                for i, glob in enumerate(m.spec.nodes):
                    if not fnmatch.filter(node_names, glob):
                        broken = fnmatch.filter(c.invalid.get("Node", {}), glob)
                        c.add(d, f"/spec/nodes/{i}", "ref/glob-matches-nothing",
                              f"node glob {glob!r} matches only invalid Nodes ({', '.join(broken)}: see their "
                              "errors)" if broken else f"node glob {glob!r} matches no Node", Severity.WARNING)
            elif isinstance(m, SandboxProfileDoc):
                if m.spec.seccompProfile not in RESERVED_SECCOMP:
                    c.one(d, "/spec/seccompProfile", "SeccompProfile", m.spec.seccompProfile, "ref/seccomp")
                c.one(d, "/spec/zone", "NetworkZone", m.spec.zone, "ref/zone", zones)
            elif isinstance(m, SeccompProfileDoc):
                if m.metadata.name in RESERVED_SECCOMP:
                    c.add(d, "/metadata/name", "ref/reserved-name",
                          f"{m.metadata.name!r} is reserved for seccomp profiles")
                _, found = resolve_seccomp(d.bundle, d.doc)
                c.out.setdefault(d.bundle.dir_name, []).extend(found)
            elif isinstance(m, NetworkZoneDoc):
                if m.metadata.name == BUILTIN_ZONE and m.spec.mode != "none":
                    c.add(d, "/spec/mode", "ref/reserved-name", "zone 'none' is built in and has mode none")
                if m.spec.egress and m.spec.mode != "egress":
                    c.add(d, "/spec/egress", "ref/egress-in-non-egress-zone",
                          f"zone has mode {m.spec.mode!r}; an egress list needs mode egress")
            elif isinstance(m, SecretSourceDoc):
                _check_source(c, d, m)
            elif isinstance(m, SecretDoc):
                c.one(d, "/spec/source", "SecretSource", m.spec.source, "ref/secret-source")
            elif isinstance(m, NodeDoc):
                _check_node(c, d, m, zones)
    _check_cycles(c, defs)
    return c.out


_SOURCE_FIELDS = {"env": {"prefix"}, "file": {"path"}, "encrypted": set(),
                  "vault": {"address", "mount", "tokenFile"}}


def _check_source(c: _Checker, d: Definition, m: SecretSourceDoc) -> None:
    wanted = _SOURCE_FIELDS[m.spec.type]
    given = {f for f in ("prefix", "path", "address", "mount", "tokenFile") if getattr(m.spec, f) is not None}
    for f in sorted(wanted - given):
        c.add(d, f"/spec/{f}", "ref/secret-source-config", f"type {m.spec.type} needs `{f}`")
    for f in sorted(given - wanted):
        c.add(d, f"/spec/{f}", "ref/secret-source-config", f"type {m.spec.type} does not take `{f}`")


def _check_node(c: _Checker, d: Definition, m: NodeDoc, zones: frozenset[str]) -> None:
    c.one(d, "/spec/profile", "SandboxProfile", m.spec.profile, "ref/profile")
    c.ref(d, "/spec/secrets", "Secret", m.spec.secrets, "ref/secret")
    if m.spec.zone is not None:
        c.one(d, "/spec/zone", "NetworkZone", m.spec.zone, "ref/zone", zones)
    if m.spec.source is not None:
        rel = _inside(d.bundle, m.spec.source.path)
        if rel is None:
            c.add(d, "/spec/source/path", "ref/path-escape", f"{m.spec.source.path!r} leaves the bundle")
        elif not any(PurePosixPath(f).is_relative_to(rel) and PurePosixPath(f) != rel for f in d.bundle.files):
            c.add(d, "/spec/source/path", "ref/node-source",
                  f"directory {m.spec.source.path!r} does not exist in the bundle (or is empty)")
    profile = c.defs.get("SandboxProfile", {}).get(m.spec.profile)
    if profile is not None and m.spec.timeoutSeconds is not None:
        limit = profile.doc.model.spec.resources.timeoutSeconds  # type: ignore[attr-defined]
        if m.spec.timeoutSeconds > limit:
            c.add(d, "/spec/timeoutSeconds", "ref/node-timeout",
                  f"timeoutSeconds {m.spec.timeoutSeconds} is above profile {m.spec.profile!r}'s {limit}")
    if m.spec.inputSchema is not None:
        why = check_json_schema(m.spec.inputSchema)
        if why is not None:
            c.add(d, "/spec/inputSchema", "schema/invalid-value", f"inputSchema is not a valid JSON Schema: {why}")


def _check_cycles(c: _Checker, defs: Definitions) -> None:
    roles = {name: d.doc.model.spec.inherits for name, d in defs.get("Role", {}).items()}  # type: ignore[attr-defined]
    state: dict[str, int] = {}  # 1 visiting, 2 done
    reported: set[str] = set()
    for start in sorted(roles):
        if state.get(start):
            continue
        # Iterative DFS: inheritance chains come from files and must not recurse without bound.
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            name, i = stack.pop()
            if i == 0:
                state[name] = 1
                path.append(name)
            parents = [p for p in roles.get(name, ()) if p in roles]
            if i < len(parents):
                stack.append((name, i + 1))
                nxt = parents[i]
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt):]
                    for member in cycle:
                        if member not in reported:
                            reported.add(member)
                            c.add(defs["Role"][member], "/spec/inherits", "ref/inherit-cycle",
                                  "role inheritance cycle: " + " -> ".join([*cycle, nxt]))
                elif not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[name] = 2
                path.pop()
