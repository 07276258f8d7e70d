"""Rendering for the command lines: text (rich, respecting NO_COLOR and non-TTYs), JSON, YAML, GitHub."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from onexd.policy.problems import Problem, Severity
from onexd.policy.yamlsafe import dump_yaml


def console(stderr: bool = False) -> Console:
    # rich honours NO_COLOR and disables styling when the stream is not a terminal.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


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
