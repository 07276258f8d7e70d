"""The active policy: one immutable PolicyState, replaced by a single reference swap on every reload.

A reload validates every bundle of the directory on the side. Valid changes are activated together;
an invalid bundle keeps its last good version (persisted in the state directory) and is reported as a
rejection until it is fixed or removed. Nothing is ever partially applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from onexd.policy.loader import LoadLimits, ParsedBundle, find_bundles, parse_bundle_contained
from onexd.policy.pipeline import Trust, evaluate
from onexd.policy.problems import Problem, Severity, problem
from onexd.policy.schema import SchemaSet
from onexd.policy.snapshot import Snapshot
from onexd.policy.store import ActiveEntry, BundleStore
from onexd.policy.versions import ActiveVersion
from onexd.timestamps import iso

log = logging.getLogger("onexd.policy")


@dataclass(frozen=True, slots=True)
class Rejection:
    dir_name: str
    name: str
    version: str
    digest: str
    at: float
    problems: tuple[Problem, ...]

    def as_dict(self) -> dict[str, object]:
        errors = [p for p in self.problems if p.severity is Severity.ERROR]
        return {"bundle": self.name, "directory": self.dir_name, "version": self.version, "digest": self.digest,
                "rejectedAt": iso(self.at), "files": sorted({p.file for p in errors}),
                "problems": [p.as_dict() for p in self.problems]}


@dataclass(frozen=True, slots=True)
class PolicyState:
    snapshot: Snapshot
    entries: Mapping[str, ActiveEntry]
    rejections: Mapping[str, Rejection]
    reloaded_at: float
    problems: tuple[Problem, ...] = ()  # not tied to a bundle: an unreadable directory
    active_bundles: Mapping[str, ParsedBundle] = field(default_factory=dict)

    @property
    def degraded(self) -> bool:
        return bool(self.rejections) or bool(self.problems)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    changed: bool
    digest: str
    activated: tuple[str, ...]
    rejected: tuple[str, ...]
    removed: tuple[str, ...]


class PolicyManager:
    def __init__(self, policy_dir: Path, store: BundleStore, trust: Trust | None = None,
                 limits: LoadLimits | None = None) -> None:
        self.policy_dir = policy_dir
        self.store = store
        self.trust = trust or Trust()
        self.limits = limits or LoadLimits()
        self.schemas = SchemaSet.shared()
        self._reload_lock = threading.Lock()
        persisted = store.load(self.schemas, self.limits, str(policy_dir))
        ev = evaluate(list(persisted.values()))
        assert ev.snapshot is not None
        self._state = PolicyState(snapshot=ev.snapshot, entries=MappingProxyType(store.entries()),
                                  rejections=MappingProxyType({}), reloaded_at=time.time(),
                                  active_bundles=MappingProxyType({b.dir_name: b for b in ev.accepted}))

    @property
    def state(self) -> PolicyState:
        return self._state

    def reload(self, reason: str, allow_rollback: frozenset[str] = frozenset()) -> ReloadResult:
        """Validate the directory and activate what is valid. Serialized; safe to call from any thread.
        allow_rollback names bundles an operator explicitly allows to go back to a lower version."""
        with self._reload_lock:
            return self._reload(reason, allow_rollback)

    def _reload(self, reason: str, allow_rollback: frozenset[str] = frozenset()) -> ReloadResult:
        before = self._state
        shown = str(self.policy_dir)
        try:
            roots = find_bundles(self.policy_dir)
        except OSError as exc:
            issue = problem(shown, None, "", "bundle/missing-manifest", f"policy directory unreadable: {exc.strerror}")
            self._state = PolicyState(before.snapshot, before.entries, before.rejections, time.time(), (issue,),
                                      before.active_bundles)
            log.error("policy reload failed", extra={"reason": reason, "why": exc.strerror})
            return ReloadResult(False, before.snapshot.digest, (), (), ())
        candidates = [parse_bundle_contained(r, f"{shown.rstrip('/')}/{r.name}", self.schemas, self.limits)
                      for r in roots]
        present = {c.dir_name for c in candidates}
        fallbacks = {d: b for d, b in before.active_bundles.items() if d in present}
        # A removed bundle's last version still counts: re-adding an older one is a downgrade.
        active = {name: ActiveVersion(name, version, digest)
                  for name, (version, digest) in self.store.history().items()}
        active.update({e.name: ActiveVersion(e.name, e.version, e.digest) for e in before.entries.values()})
        ev = evaluate(candidates, trust=self.trust, active=active, fallbacks=fallbacks, allow_rollback=allow_rollback)
        assert ev.snapshot is not None
        now = time.time()
        rejections = {r.dir_name: Rejection(r.dir_name, r.name, r.version, r.digest, now, r.problems)
                      for r in ev.reports if not r.accepted}
        accepted = list(ev.accepted)
        changed = ev.snapshot.digest != before.snapshot.digest
        entries = before.entries
        if changed or {b.dir_name for b in accepted} != set(before.entries):
            entries = MappingProxyType(self.store.save(accepted, before.entries))
        self._state = PolicyState(snapshot=ev.snapshot, entries=entries, rejections=MappingProxyType(rejections),
                                  reloaded_at=now, active_bundles=MappingProxyType({b.dir_name: b for b in accepted}))
        activated = tuple(sorted(b.dir_name for b in accepted if (old := before.entries.get(b.dir_name)) is None
                                 or old.digest != b.digest))
        removed = tuple(sorted(set(before.entries) - {b.dir_name for b in accepted} - set(rejections)))
        result = ReloadResult(changed, ev.snapshot.digest, activated, tuple(sorted(rejections)), removed)
        log.info("policy reloaded", extra={"reason": reason, "digest": ev.snapshot.digest, "changed": changed,
                                           "activated": list(activated), "rejected": list(result.rejected),
                                           "removed": list(removed)})
        for rejection in rejections.values():  # a warning, so that `journalctl -p warning` shows it
            log.warning("policy bundle rejected", extra={
                "reason": reason, "bundle": rejection.dir_name, "version": rejection.version,
                "problems": [f"{p.file}:{p.line or 0} {p.code}: {p.message}" for p in rejection.problems][:20]})
        return result
