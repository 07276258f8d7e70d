"""`onexd policy analyze`, `policy validate --min-score N` and the score moves of `policy diff`: wiring only."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from onexd.cli.output import console, print_json, print_problems
from onexd.errors import PolicyError, UsageError
from onexd.policy.diff import Change
from onexd.policy.models import parse_size
from onexd.policy.pipeline import Evaluation, load_directory
from onexd.policy.posture import HostCapacity, Posture, analyze, below, score_changes
from onexd.policy.snapshot import Snapshot

DEFAULT_POLICY_DIR = "/etc/onexd/policies.d"
EXIT_OK, EXIT_INVALID = 0, 3


def add_host_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host-cpus", type=float, metavar="N",
                   help="compare CPU limits with N cores instead of this host's (for scores that match in CI)")
    p.add_argument("--host-memory", metavar="SIZE",
                   help="compare memory limits with SIZE (`8Gi`) instead of this host's memory")


def host_capacity(args: argparse.Namespace) -> HostCapacity:
    here = HostCapacity.of_this_host()
    memory = here.memory_bytes
    if getattr(args, "host_memory", None):
        parsed = parse_size(args.host_memory)
        if not isinstance(parsed, int) and not (isinstance(parsed, str) and parsed.isdigit()):
            raise UsageError(f"--host-memory {args.host_memory!r}: give bytes or a size like 8Gi")
        memory = int(parsed)
    cpus = args.host_cpus if getattr(args, "host_cpus", None) else here.cpus
    if cpus <= 0 or memory <= 0:
        raise UsageError("--host-cpus and --host-memory must be positive")
    return HostCapacity(cpus=cpus, memory_bytes=memory)


def _snapshot(path: str) -> Snapshot:
    if not Path(path).exists():
        raise UsageError(f"{path}: no such directory")
    ev = load_directory(Path(path), path)
    if not ev.ok or ev.snapshot is None:
        print_problems(ev.all_problems(), "text")
        raise PolicyError(f"{path} does not validate; fix it first (onexd policy validate {path})")
    return ev.snapshot


def _table(postures: Sequence[Posture], source: str) -> None:
    out = console()
    table = Table(title=f"posture of {escape(source)} (100 = nothing left to take away)", title_justify="left")
    for column in ("score", "kind", "name", "profile", "findings (weight)"):
        table.add_column(column)
    for p in postures:
        style = "green" if p.score >= 80 else "yellow" if p.score >= 60 else "red"
        findings = "\n".join(f"-{f.weight:<2} {f.area}: {f.message}" for f in p.findings) or "-"
        table.add_row(f"[{style}]{p.score}[/{style}]", p.subject, escape(p.name), escape(p.profile),
                      escape(findings))
    out.print(table)


def cmd_analyze(args: argparse.Namespace) -> int:
    host = host_capacity(args)
    paths = args.paths or [os.environ.get("ONEXD_POLICY_DIR", DEFAULT_POLICY_DIR)]
    results: list[dict[str, object]] = []
    for path in paths:
        postures = analyze(_snapshot(path), host)
        if args.output == "json":
            results += [{"policy": path, **p.as_dict()} for p in postures]
        else:
            _table(postures, path)
    if args.output == "json":
        print_json(results)
    return EXIT_OK


def register(psub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `policy analyze` to the `onexd policy` subcommands."""
    p = psub.add_parser("analyze", help="posture score (0-100, higher is stronger) of every profile and node")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=f"policy directories (default $ONEXD_POLICY_DIR or {DEFAULT_POLICY_DIR})")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_host_arguments(p)
    p.set_defaults(func=cmd_analyze)


def add_min_score(p: argparse.ArgumentParser) -> None:
    """`policy validate --min-score N`: CI refuses a policy whose weakest sandbox scores below N."""
    p.add_argument("--min-score", type=int, metavar="N", help="also fail (exit 3) when a profile or node "
                                                              "scores below N (see `onexd policy analyze`)")
    add_host_arguments(p)


def min_score_failed(args: argparse.Namespace, evaluations: Sequence[Evaluation]) -> bool:
    """True (after saying which) when --min-score is given and a valid policy has a sandbox below it."""
    if args.min_score is None:
        return False
    host = host_capacity(args)
    weak = [p for ev in evaluations if ev.ok and ev.snapshot is not None for p in below(analyze(ev.snapshot, host),
                                                                                        args.min_score)]
    err = console(stderr=True)
    for p in weak:
        err.print(f"[red]posture below {args.min_score}:[/red] {p.subject} {escape(p.name)} scores {p.score}")
    return bool(weak)


def diff_scores(args: argparse.Namespace, old: Snapshot, new: Snapshot) -> list[Change]:
    """The score moves `policy diff` adds to its changes."""
    return score_changes(old, new, host_capacity(args))
