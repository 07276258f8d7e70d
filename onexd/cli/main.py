"""`onexd`: the daemon's offline tools. This module only wires arguments to the library."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.markup import escape

from onexd import __version__
from onexd.cli import audit_search, posture
from onexd.cli.exits import EXIT_ERROR, EXIT_INVALID, EXIT_OK, exit_code_for
from onexd.cli.output import console, explain_text, print_json, print_problems, print_yaml
from onexd.crypto import generate_ed25519, load_private_key, load_public_key, private_pem, public_pem
from onexd.engine.request import JobRequest
from onexd.errors import OnexdError, PolicyError, UsageError
from onexd.identity.principal import parse_subject, unix_principal
from onexd.jobs.runner import InvalidInput, JobRunner, explain
from onexd.jobs.zones import EgressZones
from onexd.policy.diff import diff_snapshots
from onexd.policy.models import first_error
from onexd.policy.pipeline import Evaluation, Trust, load_directory, load_paths, severity_counts
from onexd.policy.problems import Severity, has_errors
from onexd.policy.schema import write_schemas
from onexd.policy.signing import sign_bundle
from onexd.policy.snapshot import Snapshot
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.images import build_images
from onexd.runtime.kmsg import KernelLog
from onexd.secrets.staging import check_staging_dir, default_staging_dir


def _read_trust(paths: Sequence[str]) -> Trust:
    if not paths:
        return Trust()
    return Trust(require_signed=True, keys=tuple(load_public_key(Path(p)) for p in paths))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(ev: Evaluation) -> None:
    out = console(stderr=True)
    for r in ev.reports:
        errors, warnings = severity_counts(r.problems)
        mark = "[green]valid[/green]" if r.accepted else "[red]invalid[/red]"
        extra = f" ({_plural(errors, 'error')}, {_plural(warnings, 'warning')})" if r.problems else ""
        out.print(f"{escape(r.name)}@{escape(r.version)} sha256:{r.digest[:12]} {mark}{extra}")


def _existing_dirs(paths: Sequence[str]) -> list[Path]:
    """Paths a command reads policy from: a missing one is a usage error (exit 2), not an invalid policy."""
    for path in paths:
        if not Path(path).exists():
            raise UsageError(f"{path}: no such file or directory")
        if not Path(path).is_dir():
            raise UsageError(f"{path}: not a directory (give a policy directory or a bundle directory)")
    return [Path(p) for p in paths]


def cmd_validate(args: argparse.Namespace) -> int:
    """All the paths validated together, as the daemon merges its policy directory."""
    trust = _read_trust(args.trust)
    ev = load_paths(_existing_dirs(args.paths), args.paths, trust=trust)
    problems = ev.all_problems()
    print_problems(problems, args.output)
    if args.output == "text":
        _summary(ev)
    warned = args.strict and any(p.severity is Severity.WARNING for p in problems)
    weak = posture.min_score_failed(args, [ev])  # --min-score
    return EXIT_OK if ev.ok and not warned and not weak else EXIT_INVALID


def _valid_snapshot(path: str) -> Snapshot:
    ev = load_directory(_existing_dirs([path])[0], path)
    if not ev.ok or ev.snapshot is None:
        print_problems(ev.all_problems(), "text")
        raise PolicyError(f"{path} does not validate; fix it first (onexd policy validate {path})")
    return ev.snapshot


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None


def parse_request(data: Any, source: str) -> JobRequest:
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        where, message = first_error(exc, "request")
        raise UsageError(f"{source}: {where}: {message}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    snapshot = _valid_snapshot(args.policy_dir)
    principal = parse_subject(args.subject)
    request = parse_request(_read_json(args.request), args.request)
    result = explain(snapshot, principal, request)
    _emit(result, args.output, explain_text)
    return EXIT_OK if result["allowed"] and not result["inputErrors"] else EXIT_INVALID


def _emit(data: Any, fmt: str, text: Callable[[Any], None]) -> None:
    """One answer in the chosen format: JSON, YAML, or the command's own text rendering."""
    if fmt == "json":
        print_json(data)
    elif fmt == "yaml":
        print_yaml(data)
    else:
        text(data)


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = _valid_snapshot(args.old), _valid_snapshot(args.new)
    changes = diff_snapshots(old, new) + posture.diff_scores(args, old, new)

    def text(_: Any) -> None:
        out = console()
        for c in changes:
            color = {"widens": "red", "narrows": "green", "changes": "yellow"}[c.effect]
            out.print(f"[{color}]{escape(c.text())}[/{color}]")
        widen = sum(1 for c in changes if c.effect == "widens")
        console(stderr=True).print(f"{_plural(len(changes), 'change')}, {widen} widening access" if changes
                                   else "no changes")

    _emit([c.as_dict() for c in changes], args.output, text)
    return 1 if changes else EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    """Validates DIR (alone, or with --policy-dir D in the context of D's bundles) before signing it."""
    key = load_private_key(Path(args.key))
    directory = _existing_dirs([args.dir])[0]
    if not (directory / "bundle.yaml").is_file():
        raise UsageError(f"{args.dir} is not a bundle directory (no bundle.yaml)")
    context = _existing_dirs([args.policy_dir]) if args.policy_dir else []
    ev = load_paths([*context, directory], [*([args.policy_dir] if context else []), args.dir])
    report = next(r for r in ev.reports if r.dir_name == directory.name)
    if not report.accepted or has_errors(report.problems) or has_errors(ev.problems):
        print_problems([*ev.problems, *report.problems], "text")
        where = f" beside {args.policy_dir}" if context else ""
        raise PolicyError(f"{args.dir} does not validate{where}; it was not signed")
    bundle = next(b for b in ev.accepted if b.dir_name == directory.name)
    target = sign_bundle(bundle, key)
    console().print(f"signed {escape(bundle.name)}@{escape(bundle.version)}: {len(bundle.files)} files, "
                    f"sha256:{bundle.digest[:12]} -> {escape(str(target))}")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    path = Path(args.path)
    pub = path.with_name(path.name + ".pub")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: no such directory; create it first (mkdir -m 700 {path.parent})")
    for p in (path, pub):
        if p.exists():
            raise UsageError(f"{p} exists; refusing to overwrite a key")
    key = generate_ed25519()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    pub.write_bytes(public_pem(key.public_key()))
    console().print(f"wrote {escape(str(path))} (private, 0600) and {escape(str(pub))} (public)")
    return EXIT_OK


def cmd_schemas(args: argparse.Namespace) -> int:
    """With --out DIR: one file a kind. Without: all of them on stdout, as one JSON object keyed by file name."""
    if args.out is None:
        from onexd.policy.schema import generated_schemas, schema_file_name

        print_json({schema_file_name(kind): schema for kind, schema in generated_schemas().items()})
        return EXIT_OK
    for path in write_schemas(Path(args.out)):
        console(stderr=True).print(f"wrote {escape(str(path))}")
    return EXIT_OK


def cmd_rules(_: argparse.Namespace) -> int:
    from onexd.docgen import rules_markdown

    sys.stdout.write(rules_markdown())
    return EXIT_OK


def _runtime(args: argparse.Namespace) -> DockerRuntime:
    runtime = DockerRuntime(args.docker_host)
    runtime.ping()
    return runtime


def cmd_image_build(args: argparse.Namespace) -> int:
    err = console(stderr=True)
    runtime = _runtime(args)
    if err.is_terminal:
        with err.status("building runner images") as status:
            outcomes = build_images(runtime, args.only, args.force, lambda m: status.update(escape(m)))
    else:
        outcomes = build_images(runtime, args.only, args.force, lambda m: err.print(escape(m)))
    for o in outcomes:
        err.print(f"{escape(o.name)}: {o.action} {o.image_id[7:19]}" + (f" in {o.seconds:.1f}s" if o.seconds else ""))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if args.profile:
        if not args.target:
            raise UsageError("--profile needs a command: onexd run --profile P -- CMD [ARG...]")
        body: dict[str, Any] = {"profile": args.profile, "command": args.target}
    else:
        if len(args.target) != 1:
            raise UsageError("give exactly one NODE (or --profile P -- CMD... for an ad-hoc command)")
        try:
            body = {"node": args.target[0], "input": json.loads(args.input) if args.input else None}
        except ValueError as exc:
            raise UsageError(f"--input is not JSON: {exc}") from None
    if args.timeout is not None:
        body["timeoutSeconds"] = args.timeout
    request = parse_request(body, "request")
    snapshot = _valid_snapshot(args.policy_dir)
    principal = parse_subject(args.subject) if args.subject else unix_principal(os.getuid(), os.getgid())
    staging = check_staging_dir(Path(args.staging_dir) if args.staging_dir else default_staging_dir())
    runtime = _runtime(args)
    zones = EgressZones(runtime, Path(args.state_dir), args.egress_network)
    store_path = Path(args.state_dir) / "secrets" / "store.json"
    secret_store = _secret_store(args) if store_path.exists() else None  # the daemon's encrypted store, if any
    kernel_log = KernelLog()  # forensics: names a blocked system call; unreadable is said once, on stderr
    kernel_log.probe()
    runner = JobRunner(runtime, Path(args.state_dir), staging, release_networks=True, zones=zones,
                       secret_store=secret_store, syscall_evidence=kernel_log)
    cancel = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        console(stderr=True).print(f"onexd: {signal.Signals(signum).name}: cancelling the job (again to abort)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        outcome = runner.run(snapshot, principal, request, cancel)
    except InvalidInput as exc:
        zones.stop()
        console(stderr=True).print(f"[red]onexd: invalid input:[/red] {escape('; '.join(exc.errors))}")
        return EXIT_INVALID
    zones.stop()  # a one-shot run leaves no proxy or network behind
    if outcome.record is None:
        _emit({**outcome.decision.as_dict(snapshot), "inputErrors": []}, args.output, explain_text)
        return EXIT_INVALID
    record = outcome.record.as_dict()
    _emit(record, args.output, _record_text)
    return EXIT_OK if record["status"] == "succeeded" else EXIT_ERROR


def _record_text(record: dict[str, Any]) -> None:
    out = console()
    color = "green" if record["status"] == "succeeded" else "red"
    out.print(f"job {record['id']}: [{color} bold]{record['status']}[/{color} bold] "
              f"(exit {record['exitCode']}, {record['durationMs']} ms) {escape(record['reason'])}")
    if record["stdout"]:
        sys.stdout.write(record["stdout"] if record["stdout"].endswith("\n") else record["stdout"] + "\n")
    if record["stderr"]:
        console(stderr=True).print(escape(record["stderr"].rstrip("\n")), style="dim")
    if record["truncated"]:
        out.print("[yellow](output truncated at the profile's outputBytes)[/yellow]")


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
                                             else f"[red]invalid[/red] ({_plural(len(problems), 'problem')})"))
    return EXIT_OK if config is not None else EXIT_INVALID


def _state_dir(args: argparse.Namespace) -> Path:
    """An offline command's --state-dir: the daemon's existing one; a mistyped path is an error, never a new one."""
    state = Path(args.state_dir)
    if not state.is_dir():
        raise UsageError(f"{state}: no such state directory (--state-dir or ONEXD_STATE_DIR; the daemon's, "
                         "default /var/lib/onexd); nothing was written")
    return state


def _secret_store(args: argparse.Namespace) -> Any:
    from onexd.keys.master import load_existing_master_key
    from onexd.secrets.store import EncryptedStore

    state = _state_dir(args)
    return EncryptedStore(state / "secrets" / "store.json", load_existing_master_key(state))


def cmd_secret_set(args: argparse.Namespace) -> int:
    store = _secret_store(args)  # the state directory and master key are checked before anything is read
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
    names = _secret_store(args).names()
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


def cmd_completion(args: argparse.Namespace) -> int:
    from onexd.cli import ctl
    from onexd.cli.completion import script

    parsers = {"onexd": build_parser, "onexctl": ctl.build_parser}
    chosen = [args.prog] if args.prog else list(parsers)
    sys.stdout.write("".join(script(parsers[name](), args.shell) for name in chosen))
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    from onexd.docgen import REFERENCES

    sys.stdout.write(REFERENCES[args.which]() + "\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onexd", description="Declarative sandbox runtime daemon.")
    parser.add_argument("--version", action="version", version=f"onexd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    policy = sub.add_parser("policy", help="validate, explain, diff and sign policy bundles")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")

    p = psub.add_parser("validate", help="validate policy directories or bundles together, as the daemon merges "
                        "them (exit 0 valid, 3 invalid, 2 a missing path)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy directories and bundle directories")
    p.add_argument("-o", "--output", choices=("text", "json", "github"), default="text")
    p.add_argument("--trust", action="append", default=[], metavar="PUBKEY_PEM",
                   help="require signatures by this key (repeatable)")
    posture.add_min_score(p)
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit 3)")
    p.set_defaults(func=cmd_validate)

    p = psub.add_parser("explain", help="show the decision and sandbox for a request; nothing runs")
    p.add_argument("--policy-dir", required=True, metavar="DIR")
    p.add_argument("--as", dest="subject", required=True, metavar="KIND:NAME",
                   help="UnixUser:alice, UnixUser:1000, UnixGroup:dev, Token:ci-bot, ApiKey:deploy-bot")
    p.add_argument("request", metavar="REQUEST.json", help='{"node", "input"} or {"profile", "command"}; - '
                                                             "for stdin")
    p.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    p.set_defaults(func=cmd_explain)

    p = psub.add_parser("diff", help="security changes between two policy directories (0 same, 1 different)")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    posture.add_host_arguments(p)
    p.set_defaults(func=cmd_diff)
    posture.register(psub)  # policy analyze

    p = psub.add_parser("sign", help="write DIR/signature.jws")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--key", required=True, metavar="KEY_PEM", help="Ed25519 or RSA private key (PEM)")
    p.add_argument("--policy-dir", metavar="DIR", help="validate DIR beside this policy directory's bundles "
                   "(as the daemon will load it) before signing")
    p.set_defaults(func=cmd_sign)

    p = psub.add_parser("keygen", help="create an Ed25519 signing key pair (KEY and KEY.pub)")
    p.add_argument("path", metavar="KEY_PEM")
    p.set_defaults(func=cmd_keygen)

    p = psub.add_parser("schemas", help="the JSON Schemas of every kind (stdout, or one file each with --out)")
    p.add_argument("--out", metavar="DIR", help="write KIND.schema.json files into DIR")
    p.set_defaults(func=cmd_schemas)

    p = psub.add_parser("rules", help="print the rule code reference (docs/rules.md)")
    p.set_defaults(func=cmd_rules)

    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    image = sub.add_parser("image", help="runner images")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="SUBCOMMAND")
    p = isub.add_parser("build", help="build the runner images offline (skips those up to date)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="onexd/runner-busybox, "
                   "onexd/runner-python, or the test image onexd/test-systemd (repeatable)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--docker-host", default=docker_host, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_image_build)

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
    p.set_defaults(func=cmd_completion)

    p = sub.add_parser("docs", help="print generated reference documentation (markdown)")
    p.add_argument("which", choices=("policy", "api", "audit-events"))
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("run", help="run one job without the daemon (0 succeeded, 1 failed, 3 denied/invalid)")
    p.add_argument("--policy-dir", required=True, metavar="DIR")
    p.add_argument("--as", dest="subject", metavar="KIND:NAME", help="default: the calling Unix user")
    p.add_argument("--input", metavar="JSON", help="the job input (JSON)")
    p.add_argument("--profile", metavar="PROFILE", help="run an ad-hoc command with this profile")
    p.add_argument("--timeout", type=int, metavar="SECONDS", help="tighter timeout (never above policy)")
    p.add_argument("--state-dir", default=os.environ.get("ONEXD_STATE_DIR", "/var/lib/onexd"), metavar="DIR")
    p.add_argument("--staging-dir", metavar="DIR", help="memory-backed directory for secret files")
    p.add_argument("--docker-host", default=docker_host, metavar="URL")
    p.add_argument("--egress-network", default="bridge", metavar="NETWORK",
                   help="network egress proxies reach out through")
    p.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    p.add_argument("target", nargs="*", metavar="NODE | -- CMD ARG...")
    p.set_defaults(func=cmd_run)
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
