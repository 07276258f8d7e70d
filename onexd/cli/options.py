"""Global options that work before or after any subcommand (`onexctl -o json health`, `onexctl health -o json`).

The mechanism: build the whole parser tree first, then call `add_global_options(parser, OPTIONS)`. The options
are added to the top-level parser with their real defaults and to every subparser (at any depth) with
`default=SUPPRESS`, so a value given after the subcommand overrides one given before it and an absent one never
resets it. A subcommand added anywhere in the tree before that call gets the options for free; a subparser that
defines the same flag itself (with its own choices) keeps its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class GlobalOption:
    flags: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subparser below `parser`, depth first (argparse keeps them in _actions: no public accessor)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser once
                yield sub
                yield from subparsers(sub)


def _has_any(parser: argparse.ArgumentParser, flags: Sequence[str]) -> bool:
    return any(flag in parser._option_string_actions for flag in flags)


def add_global_options(parser: argparse.ArgumentParser, options: Sequence[GlobalOption]) -> None:
    group = parser.add_argument_group("global options (before or after the subcommand)")
    for option in options:
        group.add_argument(*option.flags, **option.kwargs)
    for sub in subparsers(parser):
        sub_group = sub.add_argument_group("global options")
        for option in options:
            if not _has_any(sub, option.flags):
                sub_group.add_argument(*option.flags, **{**option.kwargs, "default": argparse.SUPPRESS})
