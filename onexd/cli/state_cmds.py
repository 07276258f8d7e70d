"""`onexd serve`, `config validate`, `secret`, `audit verify`, `completion` and `docs`: the daemon and its state."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.markup import escape

from onexd.cli import audit_search
from onexd.cli.exits import EXIT_INVALID, EXIT_OK
from onexd.cli.output import console, print_json
from onexd.cli.policy_cmds import plural
from onexd.errors import UsageError


def _config_inputs(args: argparse.Namespace) -> tuple[Path, dict[str, str], dict[str, str], bool]:
    """Where the daemon config comes from: (file, overrides, fallbacks, whether the file must exist)."""
    from onexd import systemd

    # Precedence: flags > ONEXD_* environment > file > defaults.
    overrides = {}
    for key, env, flag in (("socket.path", "ONEXD_SOCKET", getattr(args, "socket", None)),
                           ("policyDir", "ONEXD_POLICY_DIR", getattr(args, "policy_dir", None)),
                           ("stateDir", "ONEXD_STATE_DIR", getattr(args, "state_dir", None))):
        value = flag or os.environ.get(env)
        if value:
            overrides[key] = str(Path(value).absolute())
    conf_dir = systemd.directory("CONFIGURATION_DIRECTORY")
    default_config = conf_dir / "onexd.yaml" if conf_dir else Path("/etc/onexd/onexd.yaml")
    named = args.config or os.environ.get("ONEXD_CONFIG")  # a file someone named must exist
    config_path = Path(named or default_config)
    # The unit's directories come after the file: flags > ONEXD_* > onexd.yaml > systemd > defaults.
    runtime_dir, state_dir = systemd.directory("RUNTIME_DIRECTORY"), systemd.directory("STATE_DIRECTORY")
    candidates: dict[str, Path | None] = {
        "socket.path": runtime_dir / "onexd.sock" if runtime_dir else None,
        "stateDir": state_dir,
        "policyDir": conf_dir / "policies.d" if conf_dir else None,
    }
    fallbacks = {key: str(path) for key, path in candidates.items() if path is not None}
    return config_path, overrides, fallbacks, bool(named)


def cmd_serve(args: argparse.Namespace) -> int:
    from onexd import logs
    from onexd.configfile import load_config
    from onexd.daemon import serve

    config_path, overrides, fallbacks, must_exist = _config_inputs(args)
    config = load_config(config_path, overrides, fallbacks, must_exist)  # before anything is written
    logs.setup(os.environ.get("ONEXD_LOG_LEVEL", "INFO"))
    serve(config)
    return EXIT_OK


def cmd_config_validate(args: argparse.Namespace) -> int:
    from onexd.configfile import check_config

    config_path, overrides, fallbacks, must_exist = _config_inputs(args)
    config, problems = check_config(config_path, overrides, fallbacks, must_exist)
    source = str(config_path) if config_path.exists() else f"{config_path} (absent: defaults)"
    if args.output == "json":
        print_json({"config": str(config_path), "valid": config is not None,
                    "problems": [p.as_dict() for p in problems]})
    else:
        out = console(stderr=config is None)
        for p in problems:
            where = f":{p.line}" if p.line else ""
            out.print(f"{escape(str(config_path))}{where}: [red]error[/red] {escape(p.field)}: {escape(p.message)}")
        out.print(f"{escape(source)}: " + ("[green]valid[/green]" if config is not None
                                             else f"[red]invalid[/red] ({plural(len(problems), 'problem')})"))
    return EXIT_OK if config is not None else EXIT_INVALID


def _state_dir(args: argparse.Namespace) -> Path:
    """An offline command's --state-dir: the daemon's existing one; a mistyped path is an error, never a new one."""
    state = Path(args.state_dir)
    if not state.is_dir():
        raise UsageError(f"{state}: no such state directory (--state-dir or ONEXD_STATE_DIR; the daemon's, "
                         "default /var/lib/onexd); nothing was written")
    return state


def open_secret_store(args: argparse.Namespace) -> Any:
    from onexd.keys.master import load_existing_master_key
    from onexd.secrets.store import EncryptedStore

    state = _state_dir(args)
    return EncryptedStore(state / "secrets" / "store.json", load_existing_master_key(state))


def cmd_secret_set(args: argparse.Namespace) -> int:
    store = open_secret_store(args)  # the state directory and master key are checked before anything is read
    if sys.stdin.isatty():
        console(stderr=True).print("reading the value from standard input (end with Ctrl-D)")
    value = sys.stdin.buffer.read()
    if args.strip_newline and value.endswith(b"\n"):
        value = value[:-1]
    if not value:
        raise UsageError("empty value on standard input")
    store.set(args.source, args.key, value)
    console(stderr=True).print(f"stored {escape(args.source)}/{escape(args.key)} ({len(value)} bytes, encrypted)")
    return EXIT_OK


def cmd_secret_list(args: argparse.Namespace) -> int:
    names = open_secret_store(args).names()
    if args.output == "json":
        print_json(names)
    else:
        for name in names:
            sys.stdout.write(name + "\n")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from onexd.audit.checkpoints import verify_trail
    from onexd.keys.keystore import Keystore
    from onexd.keys.master import load_existing_master_key

    state = _state_dir(args)
    if not (state / "audit").is_dir():
        raise UsageError(f"no audit trail under {state}")
    keys_path = state / "keys" / "keystore.json"
    if keys_path.exists():
        public_key = Keystore(keys_path, load_existing_master_key(state)).public_key
    else:
        def public_key(kid: str) -> None:
            return None
    result = verify_trail(state / "audit", public_key)
    if args.output == "json":
        print_json(result.as_dict())
    elif result.ok:
        console().print(f"[green]intact[/green]: {result.events} events, {result.checkpoints} signed checkpoints")
    else:
        console().print(f"[red]tampered[/red]: first bad seq {result.first_bad_seq}: {escape(result.reason)}")
    return EXIT_OK if result.ok else EXIT_INVALID



def cmd_completion(onexd_parser: Callable[[], argparse.ArgumentParser], args: argparse.Namespace) -> int:
    from onexd.cli import ctl
    from onexd.cli.completion import script

    parsers = {"onexd": onexd_parser, "onexctl": ctl.build_parser}
    chosen = [args.prog] if args.prog else list(parsers)
    sys.stdout.write("".join(script(parsers[name](), args.shell) for name in chosen))
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    from onexd.docgen import REFERENCES

    sys.stdout.write(REFERENCES[args.which]() + "\n")
    return EXIT_OK


def register_daemon(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`onexd serve` and `onexd config validate`."""
    p = sub.add_parser("serve", help="run the daemon")
    p.add_argument("--config", metavar="FILE", help="onexd.yaml (default /etc/onexd/onexd.yaml if present)")
    p.add_argument("--socket", metavar="PATH")
    p.add_argument("--policy-dir", metavar="DIR")
    p.add_argument("--state-dir", metavar="DIR")
    p.set_defaults(func=cmd_serve)
    config = sub.add_parser("config", help="the daemon configuration (onexd.yaml)")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    p = csub.add_parser("validate", help="check onexd.yaml, every problem at once (exit 0 valid, 3 invalid)")
    p.add_argument("--config", metavar="FILE", help="onexd.yaml (default: $ONEXD_CONFIG, then /etc/onexd/onexd.yaml)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_config_validate)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             onexd_parser: Callable[[], argparse.ArgumentParser]) -> None:
    """`onexd secret`, `audit`, `completion` and `docs`; onexd_parser builds the whole tree (for completion)."""
    secret = sub.add_parser("secret", help="onexd's encrypted secret store (SecretSource type encrypted)")
    ssub = secret.add_subparsers(dest="secret_command", required=True, metavar="SUBCOMMAND")
    state_default = os.environ.get("ONEXD_STATE_DIR", "/var/lib/onexd")
    p = ssub.add_parser("set", help="store SOURCE/KEY, the value read from standard input")
    p.add_argument("source", metavar="SOURCE", help="the SecretSource name (type: encrypted)")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--state-dir", default=state_default, metavar="DIR")
    p.add_argument("--keep-newline", dest="strip_newline", action="store_false",
                   help="keep a trailing newline (by default one is dropped, as `echo` adds it)")
    p.set_defaults(func=cmd_secret_set)
    p = ssub.add_parser("list", help="names only, never values")
    p.add_argument("--state-dir", default=state_default, metavar="DIR")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_secret_list)

    audit = sub.add_parser("audit", help="the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    p = asub.add_parser("verify", help="check the hash chain and signed checkpoints (0 intact, 3 tampered)")
    p.add_argument("--state-dir", default=state_default, metavar="DIR")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_audit_verify)
    audit_search.register(asub, state_default)

    p = sub.add_parser("completion", help="shell completion for onexd and onexctl: eval \"$(onexd completion bash)\"")
    p.add_argument("shell", choices=("bash", "zsh"), help="zsh: after compinit, eval \"$(onexd completion zsh)\"")
    p.add_argument("--prog", choices=("onexd", "onexctl"), help="one program's script only (for a file in "
                   "zsh's fpath or bash-completion's directory)")
    p.set_defaults(func=partial(cmd_completion, onexd_parser))

    p = sub.add_parser("docs", help="print generated reference documentation (markdown)")
    p.add_argument("which", choices=("policy", "api", "audit-events"))
    p.set_defaults(func=cmd_docs)

