"""onexctl's answers on stdout: a table (rows, or key/value), JSON or YAML, and stream items one at a time."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from onexd.cli.output import cell, console, print_json, print_yaml
from onexd.policy.yamlsafe import dump_yaml


def show(data: Any, fmt: str, columns: Sequence[str] | None = None) -> None:
    if fmt == "json":
        print_json(data)
    elif fmt == "yaml":
        print_yaml(data)
    elif columns is not None and isinstance(data, list):
        table = Table(*columns)
        for row in data:
            table.add_row(*(escape(cell(row.get(c))) for c in columns))
        console().print(table)
    elif isinstance(data, dict):
        table = Table(show_header=False)
        for key, value in data.items():
            table.add_row(key, escape(cell(value)))
        console().print(table)
    else:
        print_json(data)


def listing(data: dict[str, Any], fmt: str, key: str, columns: Sequence[str]) -> None:
    """A list answer: the rows under `key` as a table, or the whole answer as JSON/YAML."""
    if fmt == "table":
        show(data[key], fmt, columns)
    else:
        show(data, fmt)


def emit_entry(entry: dict[str, Any], fmt: str) -> None:
    """One item of a stream in JSON (one object a line) or YAML (one list item each, so the whole is a list)."""
    if fmt == "json":
        sys.stdout.write(json.dumps(entry) + "\n")
    else:
        text = dump_yaml([entry])
        sys.stdout.write(text)
    sys.stdout.flush()
