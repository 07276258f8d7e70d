"""The shared global-option mechanism (onexd.cli.options): a subcommand added anywhere gets the options."""

from __future__ import annotations

import argparse

from onexd.cli import ctl
from onexd.cli.options import GlobalOption, add_global_options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    sub = parser.add_subparsers(dest="group", required=True)
    deep = sub.add_parser("principal").add_subparsers(dest="action", required=True)
    deep.add_parser("unlock").add_argument("name")
    own = sub.add_parser("own")
    own.add_argument("-o", "--output", choices=("text", "github"), default="text")
    add_global_options(parser, [GlobalOption(("-o", "--output"), {"choices": ("table", "json"), "default": "table"}),
                                GlobalOption(("--socket",), {"default": "/run/x.sock"})])
    return parser


def test_a_nested_subcommand_gets_the_options_before_or_after() -> None:
    """Options given before, after, or not at all resolve to the given value or the top-level default."""
    parser = _parser()
    assert parser.parse_args(["principal", "unlock", "bob", "-o", "json"]).output == "json"
    assert parser.parse_args(["-o", "json", "principal", "unlock", "bob"]).output == "json"
    args = parser.parse_args(["principal", "unlock", "bob"])
    assert (args.output, args.socket) == ("table", "/run/x.sock")
    assert parser.parse_args(["--socket", "/a", "principal", "unlock", "--socket", "/b", "bob"]).socket == "/b"


def test_a_subcommand_defining_the_flag_itself_keeps_its_own() -> None:
    """A subparser with its own -o (other choices) is left alone."""
    assert _parser().parse_args(["own", "-o", "github"]).output == "github"


def test_every_onexctl_command_takes_the_global_options() -> None:
    """Each onexctl leaf command parses -o, --socket, --token, --api-key and --request-timeout after it."""
    parser = ctl.build_parser()
    tail = ["-o", "yaml", "--socket", "/s", "--token", "t", "--api-key", "k", "--request-timeout", "3"]
    for argv in (["version"], ["health"], ["job", "list"], ["job", "logs", "x"], ["keys", "jwks"],
                 ["audit", "tail"], ["zone", "list"], ["apikey", "list"], ["policy", "status"]):
        args = parser.parse_args([*argv, *tail])
        assert (args.output, args.socket, args.token, args.api_key, args.request_timeout) == \
            ("yaml", "/s", "t", "k", 3.0), argv
