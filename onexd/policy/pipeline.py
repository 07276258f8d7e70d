"""The five-stage validation pipeline over a set of bundles, and the snapshot of those that pass.

Bundles are validated together (names are global, references cross bundles). A bundle with an error is set
aside (or replaced by its fallback, the last good version) and the rest re-checked, until the set is stable:
so one broken bundle never takes a healthy one down with it, and nothing is ever partially applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from onexd.crypto import PublicKey
from onexd.policy.loader import LoadLimits, ParsedBundle, find_bundles, parse_bundle_contained
from onexd.policy.problems import Problem, Severity, has_errors, problem
from onexd.policy.schema import SchemaSet
from onexd.policy.security import check_security
from onexd.policy.semantics import build_definitions, check_semantics, unavailable_names
from onexd.policy.signing import check_signature
from onexd.policy.snapshot import Snapshot, build_snapshot
from onexd.policy.versions import ActiveVersion, check_version


@dataclass(frozen=True, slots=True)
class Trust:
    require_signed: bool = False
    keys: tuple[PublicKey, ...] = ()


@dataclass(frozen=True, slots=True)
class BundleReport:
    dir_name: str
    name: str
    version: str
    digest: str
    accepted: bool
    problems: tuple[Problem, ...]
    fallback: bool = False  # True when the last good version was kept instead of this one


@dataclass(frozen=True, slots=True)
class Evaluation:
    snapshot: Snapshot | None
    accepted: tuple[ParsedBundle, ...]
    reports: tuple[BundleReport, ...]
    problems: tuple[Problem, ...] = field(default=())  # not tied to a bundle (e.g. no bundles found)

    @property
    def ok(self) -> bool:
        return all(r.accepted and not r.fallback for r in self.reports) and not has_errors(self.problems)

    def all_problems(self) -> list[Problem]:
        found = [*self.problems, *(p for r in self.reports for p in r.problems)]
        return sorted(found, key=Problem.sort_key)


def _own_checks(bundle: ParsedBundle, trust: Trust, active: ActiveVersion | None,
                allow_rollback: bool) -> list[Problem]:
    """Stage 5 checks that depend on the bundle alone (stages 1-2 are already in bundle.problems)."""
    out: list[Problem] = []
    if trust.require_signed:
        out += check_signature(bundle, list(trust.keys))
    manifest = bundle.manifest
    if manifest is not None:
        doc = next(d for d in bundle.docs if d.kind == "Bundle")
        out += check_version(bundle.name, bundle.version, bundle.digest, active, doc.file,
                             doc.line("/spec/version"), allow_rollback)
    return out


def evaluate(candidates: Sequence[ParsedBundle], *, trust: Trust | None = None,
             active: Mapping[str, ActiveVersion] | None = None,
             fallbacks: Mapping[str, ParsedBundle] | None = None,
             allow_rollback: frozenset[str] = frozenset()) -> Evaluation:
    """Validate candidates together; active versions are the downgrade reference, fallbacks the last good
    bundle (by directory name) to keep when a candidate is rejected."""
    trust = trust or Trust()
    active = active or {}
    fallbacks = dict(fallbacks or {})
    problems: dict[str, list[Problem]] = {}
    working: dict[str, ParsedBundle] = {}
    rejected: dict[str, ParsedBundle] = {}
    for bundle in candidates:
        own = [*bundle.problems,
               *_own_checks(bundle, trust, active.get(bundle.name), bundle.name in allow_rollback)]
        problems[bundle.dir_name] = own
        if has_errors(own):
            rejected[bundle.dir_name] = bundle
        else:
            working[bundle.dir_name] = bundle
    for dir_name in rejected:
        if dir_name in fallbacks:
            working[dir_name] = fallbacks.pop(dir_name)
    incumbents = frozenset(d for d, b in working.items() if b.name in active
                           and active[b.name].digest == b.digest)
    while True:
        current = list(working.values())
        defs, found = build_definitions(current, incumbents)
        gone = unavailable_names([b for d, b in rejected.items() if d not in working])
        for stage in (check_semantics(current, defs, gone), check_security(current, defs)):
            for dir_name, more in stage.items():
                found.setdefault(dir_name, []).extend(more)
        failing = [d for d, f in found.items() if has_errors(f)]
        if not failing:
            break
        for dir_name in failing:
            bundle = working.pop(dir_name)
            if dir_name not in rejected:
                problems[dir_name] = problems.get(dir_name, []) + found[dir_name]
                rejected[dir_name] = bundle
            if dir_name in fallbacks:
                working[dir_name] = fallbacks.pop(dir_name)
    for dir_name, more in found.items():  # warnings of what was accepted
        if dir_name not in rejected:
            problems[dir_name] = problems.get(dir_name, []) + more
    accepted = tuple(sorted(working.values(), key=lambda b: b.dir_name))
    for dir_name, bundle in rejected.items():
        problems[dir_name] = _diagnose(bundle, accepted, problems.get(dir_name, []), list(rejected.values()))
    reports = []
    for bundle in candidates:
        is_rejected = bundle.dir_name in rejected
        kept = working.get(bundle.dir_name)
        reports.append(BundleReport(
            dir_name=bundle.dir_name, name=bundle.name, version=bundle.version, digest=bundle.digest,
            accepted=not is_rejected, fallback=is_rejected and kept is not None,
            problems=tuple(sorted(problems.get(bundle.dir_name, []), key=Problem.sort_key))))
    return Evaluation(snapshot=build_snapshot(accepted, defs), accepted=accepted, reports=tuple(reports))


def _diagnose(bundle: ParsedBundle, accepted: Sequence[ParsedBundle], known: list[Problem],
              rejected: Sequence[ParsedBundle] = ()) -> list[Problem]:
    """Every problem of a rejected bundle, not only those of the stage that stopped it: its schema-valid
    documents are checked against the accepted set as well."""
    others = [b for b in accepted if b.dir_name != bundle.dir_name]
    defs, found = build_definitions([*others, bundle])
    more = found.get(bundle.dir_name, [])
    gone = unavailable_names([b for b in rejected if b.dir_name != bundle.dir_name])
    for stage in (check_semantics([bundle], defs, gone), check_security([bundle], defs)):
        more += stage.get(bundle.dir_name, [])
    seen = set(known)
    return [*known, *(p for p in more if p not in seen)]


def load_directory(path: Path, display: str | None = None, *, trust: Trust | None = None,
                   limits: LoadLimits | None = None, schemas: SchemaSet | None = None) -> Evaluation:
    """Stages 1-5 for a policy directory (bundles as subdirectories) or a single bundle directory."""
    display = display if display is not None else str(path)
    if not path.is_dir():
        return Evaluation(None, (), (), (problem(display, None, "", "bundle/missing-manifest",
                                                 "not a directory"),))
    schemas = schemas or SchemaSet.shared()
    roots = find_bundles(path)
    if not roots:
        return Evaluation(None, (), (), (problem(display, None, "", "bundle/missing-manifest",
                                                 "no bundle found (a bundle is a directory with bundle.yaml)"),))
    single = roots == [path]
    parsed = [parse_bundle_contained(root, display if single else f"{display.rstrip('/')}/{root.name}", schemas,
                                     limits) for root in roots]
    return evaluate(parsed, trust=trust)


def load_paths(paths: Sequence[Path], displays: Sequence[str] | None = None, *, trust: Trust | None = None,
               limits: LoadLimits | None = None, schemas: SchemaSet | None = None) -> Evaluation:
    """Stages 1-5 for several policy directories and bundle directories validated together, as the daemon
    validates its policy directory: a bundle may use what another defines (baseline roles, seccomp files).
    A bundle directory given later replaces an earlier one of the same directory name, as a new version
    replaces the old one in the daemon's directory; the same directory given twice counts once."""
    shown = list(displays) if displays is not None else [str(p) for p in paths]
    schemas = schemas or SchemaSet.shared()
    chosen: dict[str, tuple[Path, str]] = {}
    general: list[Problem] = []
    for path, display in zip(paths, shown, strict=True):
        if not path.is_dir():
            general.append(problem(display, None, "", "bundle/missing-manifest", "not a directory"))
            continue
        roots = find_bundles(path)
        if not roots:
            general.append(problem(display, None, "", "bundle/missing-manifest",
                                   "no bundle found (a bundle is a directory with bundle.yaml)"))
        single = roots == [path]
        for root in roots:
            chosen.pop(root.name, None)  # re-inserted last: the order of the paths is kept
            chosen[root.name] = (root, display if single else f"{display.rstrip('/')}/{root.name}")
    parsed = [parse_bundle_contained(root, display, schemas, limits) for root, display in chosen.values()]
    ev = evaluate(parsed, trust=trust) if parsed else Evaluation(None, (), ())
    return Evaluation(ev.snapshot, ev.accepted, ev.reports, (*ev.problems, *general))


def severity_counts(problems: Sequence[Problem]) -> tuple[int, int]:
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    return errors, len(problems) - errors
