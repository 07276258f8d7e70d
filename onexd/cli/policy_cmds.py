"""`onexd policy`: validate, explain, diff, sign, keygen, schemas and rules (offline, no daemon)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.markup import escape

from onexd.cli import posture
from onexd.cli.exits import EXIT_INVALID, EXIT_OK
from onexd.cli.output import console, explain_text, print_json, print_problems, print_yaml
from onexd.crypto import generate_ed25519, load_private_key, load_public_key, private_pem, public_pem
from onexd.engine.request import JobRequest
from onexd.errors import PolicyError, UsageError
from onexd.identity.principal import parse_subject
from onexd.jobs.runner import explain
from onexd.policy.diff import diff_snapshots
from onexd.policy.models import first_error
from onexd.policy.pipeline import Evaluation, Trust, load_directory, load_paths, severity_counts
from onexd.policy.problems import Severity, has_errors
from onexd.policy.schema import write_schemas
from onexd.policy.signing import sign_bundle
from onexd.policy.snapshot import Snapshot


def _read_trust(paths: Sequence[str]) -> Trust:
    if not paths:
        return Trust()
    return Trust(require_signed=True, keys=tuple(load_public_key(Path(p)) for p in paths))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(ev: Evaluation) -> None:
    out = console(stderr=True)
    for r in ev.reports:
        errors, warnings = severity_counts(r.problems)
        mark = "[green]valid[/green]" if r.accepted else "[red]invalid[/red]"
        extra = f" ({plural(errors, 'error')}, {plural(warnings, 'warning')})" if r.problems else ""
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


def valid_snapshot(path: str) -> Snapshot:
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


def request_body(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The job request a command line names: `NODE [--input JSON]` or `--profile P -- CMD [ARG...]`."""
    if args.profile:
        if not args.target:
            raise UsageError(f"--profile needs a command: {command} --profile P -- CMD [ARG...]")
        return {"profile": args.profile, "command": args.target}
    if len(args.target) != 1:
        raise UsageError("give exactly one NODE (or --profile P -- CMD... for an ad-hoc command)")
    try:
        return {"node": args.target[0], "input": json.loads(args.input) if args.input else None}
    except ValueError as exc:
        raise UsageError(f"--input is not JSON: {exc}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    snapshot = valid_snapshot(args.policy_dir)
    principal = parse_subject(args.subject)
    request = parse_request(_read_json(args.request), args.request)
    result = explain(snapshot, principal, request)
    emit(result, args.output, explain_text)
    return EXIT_OK if result["allowed"] and not result["inputErrors"] else EXIT_INVALID


def emit(data: Any, fmt: str, text: Callable[[Any], None]) -> None:
    """One answer in the chosen format: JSON, YAML, or the command's own text rendering."""
    if fmt == "json":
        print_json(data)
    elif fmt == "yaml":
        print_yaml(data)
    else:
        text(data)


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = valid_snapshot(args.old), valid_snapshot(args.new)
    changes = diff_snapshots(old, new) + posture.diff_scores(args, old, new)

    def text(_: Any) -> None:
        out = console()
        for c in changes:
            color = {"widens": "red", "narrows": "green", "changes": "yellow"}[c.effect]
            out.print(f"[{color}]{escape(c.text())}[/{color}]")
        widen = sum(1 for c in changes if c.effect == "widens")
        console(stderr=True).print(f"{plural(len(changes), 'change')}, {widen} widening access" if changes
                                   else "no changes")

    emit([c.as_dict() for c in changes], args.output, text)
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `onexd policy` subcommands."""
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
