"""`onexd`: the daemon's offline tools. This module only wires arguments to the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.markup import escape

from onexd import __version__
from onexd.cli import policy_cmds, run_cmd, state_cmds
from onexd.cli.exits import exit_code_for
from onexd.cli.output import console
from onexd.cli.policy_cmds import parse_request as parse_request
from onexd.errors import OnexdError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onexd", description="Declarative sandbox runtime daemon.")
    parser.add_argument("--version", action="version", version=f"onexd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    state_cmds.register_daemon(sub)  # serve, config validate
    policy_cmds.register(sub)  # policy ...
    run_cmd.register_image(sub)  # image build
    state_cmds.register(sub, build_parser)  # secret, audit, completion, docs
    run_cmd.register(sub)  # run

    from onexd.cli.k8s import register as register_k8s  # here: the client is loaded only by `onexd k8s`

    register_k8s(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except OnexdError as exc:
        console(stderr=True).print(f"[red]onexd: error:[/red] {escape(str(exc))}")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
