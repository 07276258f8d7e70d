"""Rendering for the command lines: text (rich, respecting NO_COLOR and non-TTYs), JSON, YAML, GitHub."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from onexd.policy.problems import Problem, Severity
from onexd.policy.yamlsafe import dump_yaml


def console(stderr: bool = False) -> Console:
    # rich honours NO_COLOR and disables styling when the stream is not a terminal. Off a terminal (a pipe, a
    # file) tables are as wide as their content: rich would otherwise squeeze them to 80 columns with ellipses.
    out = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 4096
    return out


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def print_yaml(data: Any) -> None:
    sys.stdout.write(dump_yaml(data))


def _github_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def print_problems(problems: Sequence[Problem], fmt: str) -> None:
    if fmt == "json":
        print_json([p.as_dict() for p in problems])
        return
    if fmt == "github":
        for p in problems:
            level = "error" if p.severity is Severity.ERROR else "warning"
            props = f"file={_github_escape(p.file, True)}"
            if p.line:
                props += f",line={p.line}"
            props += f",title={_github_escape(p.code, True)}"
            sys.stdout.write(f"::{level} {props}::{_github_escape(p.message)} ({_github_escape(p.path or '/')})\n")
        return
    out = console()
    for p in problems:
        style = "red" if p.severity is Severity.ERROR else "yellow"
        where = f"{p.file}:{p.line}" if p.line else p.file
        out.print(f"{escape(where)}: [{style}]{p.severity}[/{style}] [bold]{escape(p.code)}[/bold]: "
                  f"{escape(p.message)}" + (f" [dim]({escape(p.path)})[/dim]" if p.path else ""))


# --- values for people -----------------------------------------------------------------------------------

SHORT_ID = 16  # 12 hex digits of milliseconds and 4 random ones: unique in practice, and a valid prefix


def short_id(job_id: str) -> str:
    return job_id[:SHORT_ID]


def cell(value: Any, nested: bool = False) -> str:
    """A table cell: mappings as `key=value` pairs and lists comma-separated (nested ones in parentheses), never
    as JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}={cell(v, True)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        sep = "; " if any(isinstance(v, Mapping) for v in value) else ", "
        text = sep.join(cell(v, True) for v in value)
    else:
        return str(value)
    if not text:
        return "-"
    return f"({text})" if nested and (len(value) > 1 or isinstance(value, Mapping)) else text


def explain_text(result: Mapping[str, Any]) -> None:
    """A decision as `onexd policy explain` and `onexctl policy explain` print it. ALLOWED only when the
    request would run: an allowed target with invalid input is reported as such, never as ALLOWED."""
    out = console()
    input_errors = result.get("inputErrors") or []
    if result["allowed"] and not input_errors:
        verdict = "[green bold]ALLOWED[/green bold]"
    elif result["allowed"]:
        verdict = "[red bold]INVALID INPUT[/red bold]"
    else:
        verdict = "[red bold]DENIED[/red bold]"
    out.print(f"{verdict}: {escape(result['principal'])} -> {escape(result['target'])}")
    for r in result["reasons"]:
        out.print(f"  [dim]{escape(r['code'])}[/dim]  {escape(r['message'])}")
    for e in input_errors:
        out.print(f"  [red]input[/red]  {escape(e)}")
    if result.get("sandbox"):
        table = Table(title="Effective sandbox", show_header=False)
        for key, value in result["sandbox"].items():
            table.add_row(key, escape(cell(value)))
        out.print(table)
    out.print(f"policy sha256:{result['policy']['digest']}")
