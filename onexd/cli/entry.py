"""The `onexd` program's entry point: answers `onexd --version` before importing the library (which loads
Docker, pydantic and the policy engine), so scripts and package managers asking for it get it at once."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from onexd import __version__

        sys.stdout.write(f"onexd {__version__}\n")
        return 0
    from onexd.cli.main import main as full_main

    return full_main(args)
