"""`onexd audit search`: the incident-response question ("everything ci-bot ran yesterday and what it was denied")
answered from the state directory's trail, without jq. Wiring only: matching lives in onexd.audit.search."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from onexd.audit.search import OUTCOMES, AuditQuery, parse_time, read_trail, search
from onexd.cli.output import console, print_json
from onexd.errors import UsageError

EXIT_OK, EXIT_NONE = 0, 1
_SUMMARY_KEYS = ("job", "node", "target", "permission", "status", "exitCode", "reasons", "blockedSyscall", "reason")


def query_from(args: argparse.Namespace, now: float) -> AuditQuery:
    return AuditQuery(principal=args.principal, node=args.node, job=args.job, outcome=args.outcome,
                      type=args.type, since=parse_time(args.since, now) if args.since else None,
                      until=parse_time(args.until, now) if args.until else None)


def cmd_audit_search(args: argparse.Namespace) -> int:
    directory = Path(args.state_dir) / "audit"
    if not directory.is_dir():
        raise UsageError(f"no audit trail under {args.state_dir}")
    found = search(read_trail(directory), query_from(args, time.time()), args.limit)
    if args.output == "json":
        print_json(found)
    else:
        table = Table(title_justify="left")
        for column in ("seq", "ts", "type", "principal", "outcome", "data"):
            table.add_column(column)
        for event in found:
            data = event.get("data") or {}
            summary = " ".join(f"{k}={json.dumps(data[k])}" for k in _SUMMARY_KEYS if data.get(k) is not None)
            table.add_row(str(event.get("seq")), str(event.get("ts")), escape(str(event.get("type"))),
                          escape(str(event.get("principal"))), str(event.get("outcome")), escape(summary))
        console().print(table)
        console(stderr=True).print(f"{len(found)} matching events")
    return EXIT_OK


def register(asub: argparse._SubParsersAction[argparse.ArgumentParser], state_default: str) -> None:
    """Add `audit search` to the `onexd audit` subcommands."""
    p = asub.add_parser("search", help="events by principal, node, job, outcome and time (oldest first)")
    p.add_argument("--state-dir", default=state_default, metavar="DIR")
    p.add_argument("--principal", metavar="P", help="as events name it: UnixUser:alice, Token:ci-bot, ApiKey:x")
    p.add_argument("--node", metavar="N", help="a node's job events and the decisions about running it")
    p.add_argument("--job", metavar="ID")
    p.add_argument("--outcome", choices=OUTCOMES)
    p.add_argument("--type", metavar="T", help="an event type (job.finished) or a prefix ending in '.' (job.)")
    p.add_argument("--since", metavar="T", help="ISO 8601 date/time (UTC) or an age: 30m, 24h, 7d")
    p.add_argument("--until", metavar="T", help="same forms as --since; the end is exclusive")
    p.add_argument("--limit", type=int, default=None, metavar="N")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_audit_search)
