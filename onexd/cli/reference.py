"""docs/cli.md, generated from the two commands' argument parsers (every command, option and argument), so the
reference cannot drift from what the commands accept. `make generate` writes it; a test fails when it drifts."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

ENVIRONMENT = (
    ("ONEXD_CONFIG", "onexd", "the config file (default `/etc/onexd/onexd.yaml`); a name that does not exist is "
                              "an error"),
    ("ONEXD_SOCKET", "both", "the socket path (`socket.path`; onexctl's `--socket`)"),
    ("ONEXD_POLICY_DIR", "onexd", "the policy directory (`policyDir`)"),
    ("ONEXD_STATE_DIR", "onexd", "the state directory (`stateDir`)"),
    ("ONEXD_LOG_LEVEL", "onexd", "`DEBUG`, `INFO` (default), `WARNING` or `ERROR`: the daemon's log level"),
    ("ONEXD_MASTER_KEY", "onexd", "the master key (at least 16 characters); before the systemd credential and "
                                  "the generated file"),
    ("ONEXD_TOKEN", "onexctl", "a bearer token to call with (`--token`): the caller is its subject, `Token:NAME`"),
    ("ONEXD_API_KEY", "onexctl", "an API key to call with (`--api-key`): the caller is `ApiKey:NAME`"),
    ("ONEXD_REQUEST_TIMEOUT", "onexctl", "seconds each request may take (`--request-timeout`)"),
    ("CREDENTIALS_DIRECTORY", "onexd", "set by systemd: `master-key` in it is the master key credential"),
    ("RUNTIME_DIRECTORY", "onexd", "set by systemd: the socket's directory (and secret staging's) when the "
                                   "config leaves them unset"),
    ("STATE_DIRECTORY", "onexd", "set by systemd: the state directory when the config leaves it unset"),
    ("CONFIGURATION_DIRECTORY", "onexd", "set by systemd: where `onexd.yaml` and `policies.d` are by default"),
    ("JOURNAL_STREAM", "onexd", "set by systemd: when stderr is the journal, each log line starts with its syslog "
                                "priority (`<4>` warning), so `journalctl -p warning` works"),
    ("NOTIFY_SOCKET", "onexd", "set by systemd: readiness, reload, stop and watchdog notifications"),
    ("LISTEN_FDS", "onexd", "set by systemd socket activation: the API socket is passed instead of bound"),
    ("ONEXD_JOB_ID", "jobs", "inside a job container: the job's id"),
)


# What common options mean where a parser gives no help text of its own.
COMMON_HELP = {
    "--socket": "the API socket (`socket.path`; env `ONEXD_SOCKET`)",
    "--policy-dir": "the policy directory (`policyDir`; env `ONEXD_POLICY_DIR`)",
    "--state-dir": "the state directory (`stateDir`; env `ONEXD_STATE_DIR`)",
    "--output": "output format",
    "--out": "directory to write into",
    "--docker-host": "Docker engine address",
    "--all": "everyone's, not only your own (needs the `-all` permission)",
    "--limit": "at most this many",
    "--status": "only jobs with this status",
    "--input": "the job input, JSON",
    "--profile": "the SandboxProfile of an ad-hoc job",
    "--timeout": "seconds, at most the policy's",
    "--subject": "the token's subject, as bound in policy (`Token:NAME`)",
    "--follow": "keep following",
    "--lines": "how many recent events",
}


def _walk(parser: argparse.ArgumentParser, words: tuple[str, ...]
          ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*words, name))


def _help(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == words[-1]:
                    return choice.help or ""
    return ""


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        positional = not action.option_strings
        name = ", ".join(f"`{o}`" for o in action.option_strings) or \
            f"`{action.metavar or action.dest}`".replace("|", "\\|")
        value = "" if action.nargs == 0 or positional else f"`{action.metavar or action.dest.upper()}`"
        if action.choices is not None:
            value = " \\| ".join(f"`{c}`" for c in action.choices)
        default = action.default if action.default not in (None, False, [], argparse.SUPPRESS) else ""
        text = (action.help or next((COMMON_HELP[o] for o in action.option_strings if o in COMMON_HELP), "")
                ).replace("|", "\\|").replace("%(default)s", str(default))
        if default != "" and action.option_strings and not isinstance(default, bool):
            text = f"{text} (default `{default}`)".strip()
        rows.append(f"| {name} | {value} | {text} |")
    return rows


def cli_reference(parsers: dict[str, Callable[[], argparse.ArgumentParser]]) -> str:
    lines = ["# CLI reference", "",
             "Generated from the commands' argument parsers by `make generate`. Exit codes: 0 ok, 1 error, 2 usage, "
             "3 denied or invalid.", ""]
    for program, build in parsers.items():
        parent = build()
        for words, parser in _walk(parent, (program,)):
            subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            options = _option_rows(parser)
            if subparsers and not options and len(words) > 1:
                continue  # a group of commands: its commands follow
            title = " ".join(words)
            lines += [f"## `{title}`", ""]
            description = parser.description if len(words) == 1 else _help(_parent(parent, words), words)
            if description:
                lines += [description.replace("\n", " "), ""]
            if subparsers:
                names = ", ".join(f"`{n}`" for a in subparsers for n in a.choices)
                lines += [f"Commands: {names}.", ""]
            if options:
                lines += ["| option or argument | value | meaning |", "|---|---|---|", *options, ""]
    lines += ["## Environment", "", "| variable | read by | meaning |", "|---|---|---|",
              *[f"| `{name}` | {who} | {text} |" for name, who, text in ENVIRONMENT], ""]
    return "\n".join(lines).rstrip() + "\n"


def _parent(root: argparse.ArgumentParser, words: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = root
    for word in words[1:-1]:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser
