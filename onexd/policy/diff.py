"""`policy diff`: what changes in security terms between two snapshots (not a text diff)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from onexd.policy.snapshot import Snapshot

Effect = Literal["widens", "narrows", "changes"]


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    name: str
    field: str
    change: str  # added, removed, raised, lowered, changed
    old: Any
    new: Any
    effect: Effect

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "field": self.field, "change": self.change,
                "old": self.old, "new": self.new, "effect": self.effect}

    def text(self) -> str:
        sign = {"widens": "+", "narrows": "-", "changes": "~"}[self.effect]
        where = f"{self.kind} {self.name}" + (f" {self.field}" if self.field else "")
        if self.change in ("added", "removed") and self.field:
            return f"{sign} {where}: {self.change} {_show(self.new if self.change == 'added' else self.old)}" \
                   f" ({self.effect})"
        if self.change in ("added", "removed"):
            return f"{sign} {where}: {self.change} ({self.effect})"
        return f"{sign} {where}: {self.change} {_show(self.old)} -> {_show(self.new)} ({self.effect})"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# Fields where growing a list or raising a number takes privileges away rather than granting them.
_NARROWING_WHEN_ADDED = {("SeccompProfile", "syscalls:deny")}


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    return value


def _views(s: Snapshot) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> name -> flat security-relevant fields."""
    seccomp: dict[str, dict[str, Any]] = {}
    for name, prof in s.seccomp.items():
        rules = [(n, r["action"]) for r in prof.get("syscalls", []) for n in r["names"]]
        seccomp[name] = {
            "defaultAction": prof.get("defaultAction"),
            "syscalls:allow": sorted(n for n, a in rules if a in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")),
            "syscalls:deny": sorted(n for n, a in rules if a not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")),
        }
    profiles = {}
    for name, p in s.profiles.items():
        flat = _plain(p)
        flat.update({f"resources.{k}": v for k, v in flat.pop("resources").items()})
        flat["capabilities.add"] = flat.pop("capabilities").get("add", [])
        _flatten_pool(flat)
        profiles[name] = flat
    bindings: dict[str, dict[str, Any]] = {}
    for (kind, subject), grants in s.bindings.items():
        bindings[f"{kind}:{subject}"] = {"roles": sorted({g.role for g in grants})}
    return {
        "Bundle": {b.name: {"version": b.version, "digest": b.digest} for b in s.bundles},
        "Role": {n: {"permissions": sorted(r.permissions), "capabilities": sorted(r.capabilities)}
                 for n, r in s.roles.items()},
        "Subject": bindings,
        "Capability": {n: _plain(c) for n, c in s.capabilities.items()},
        "SandboxProfile": profiles,
        "SeccompProfile": seccomp,
        "NetworkZone": {n: _plain(z) for n, z in s.zones.items()},
        "SecretSource": {n: _plain(x) for n, x in s.secret_sources.items()},
        "Secret": {n: _plain(x) for n, x in s.secrets.items()},
        "Node": {n: _flatten_pool(_plain(x.spec)) for n, x in s.nodes.items()},
    }


def _flatten_pool(flat: dict[str, Any]) -> dict[str, Any]:
    if "warmPool" in flat:
        flat["warmPool.size"] = flat.pop("warmPool").get("size", 0)
    return flat


def _field_changes(kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, list) or isinstance(b, list):
            before = {json.dumps(x, sort_keys=True): x for x in a or []}
            after = {json.dumps(x, sort_keys=True): x for x in b or []}
            narrowing = (kind, key) in _NARROWING_WHEN_ADDED
            for k in sorted(after.keys() - before.keys()):
                yield Change(kind, name, key, "added", None, after[k], "narrows" if narrowing else "widens")
            for k in sorted(before.keys() - after.keys()):
                yield Change(kind, name, key, "removed", before[k], None, "widens" if narrowing else "narrows")
        elif key == "warmPool.size":  # how many containers wait, not what a job may do
            yield Change(kind, name, key, "changed", a, b, "changes")
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            raised = b > a
            yield Change(kind, name, key, "raised" if raised else "lowered", a, b,
                         "widens" if raised else "narrows")
        elif kind == "Capability" and key == "adhoc":
            yield Change(kind, name, key, "changed", a, b, "widens" if b else "narrows")
        else:
            yield Change(kind, name, key, "changed", a, b, "changes")


def diff_snapshots(old: Snapshot, new: Snapshot) -> list[Change]:
    before, after = _views(old), _views(new)
    out: list[Change] = []
    for kind in before:
        a, b = before[kind], after[kind]
        for name in sorted(set(a) | set(b)):
            if name not in a:
                out.append(Change(kind, name, "", "added", None, b[name], "widens"))
            elif name not in b:
                out.append(Change(kind, name, "", "removed", a[name], None, "narrows"))
            elif kind != "Bundle" or a[name]["version"] != b[name]["version"]:
                out.extend(c for c in _field_changes(kind, name, a[name], b[name])
                           if not (kind == "Bundle" and c.field == "digest"))
            elif a[name]["digest"] != b[name]["digest"]:
                out.append(Change(kind, name, "digest", "changed", a[name]["digest"], b[name]["digest"],
                                  "changes"))
    return out
