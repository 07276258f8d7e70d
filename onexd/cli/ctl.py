"""`onexctl`: the client of the socket API. Deliberately light: stdlib HTTP over the Unix socket, rich for tables.

Exit codes: 0 ok, 1 error (including a job that did not succeed with --wait), 2 usage, 3 denied or invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from rich.markup import escape

from onexd import __version__
from onexd.cli.client import DEFAULT_SOCKET as DEFAULT_SOCKET
from onexd.cli.client import Client as Client
from onexd.cli.client import client_for, global_options
from onexd.cli.ctl_output import emit_entry, listing, show
from onexd.cli.exits import EXIT_DENIED, EXIT_ERROR, EXIT_OK, exit_code_for
from onexd.cli.options import add_global_options
from onexd.cli.output import cell, console, explain_text, short_id
from onexd.errors import ApiFailure as ApiFailure
from onexd.errors import DaemonUnreachable, OnexdError, UsageError


def _read_input(args: argparse.Namespace) -> Any:
    """The job input: --input JSON, --input - (standard input) or --input-file F (- for standard input)."""
    if args.input is not None and args.input_file is not None:
        raise UsageError("give --input or --input-file, not both")
    source = args.input_file if args.input_file is not None else ("-" if args.input == "-" else None)
    if source is not None:
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}") from None
        where = "standard input" if source == "-" else source
    elif args.input is not None:
        text, where = args.input, "--input"
    else:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where} is not JSON: {exc}") from None


def _job_rows(data: dict[str, Any], no_trunc: bool) -> dict[str, Any]:
    if no_trunc:
        return data
    return {**data, "jobs": [{**job, "id": short_id(job["id"])} for job in data["jobs"]]}


JOB_COLUMNS = ("id", "status", "node", "profile", "exitCode", "durationMs", "principal", "createdAt")


def _job_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.profile:
        if not args.target:
            raise UsageError("--profile needs a command: onexctl job run --profile P -- CMD [ARG...]")
        body: dict[str, Any] = {"profile": args.profile, "command": args.target}
    else:
        if len(args.target) != 1:
            raise UsageError("give exactly one NODE (or --profile P -- CMD...)")
        body = {"node": args.target[0], "input": _read_input(args)}
    if args.timeout:
        body["timeoutSeconds"] = args.timeout
    return body


def _version(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"client": {"version": __version__}, "server": None}
    failure: OnexdError | None = None
    try:
        data["server"] = client_for(args).call("GET", "/version")
    except (DaemonUnreachable, ApiFailure) as exc:
        failure = exc
    if args.output == "table":
        out = console()
        out.print(f"Client: onexctl {__version__}")
        server = data["server"]
        out.print(f"Server: onexd {escape(server['version'])} (API {escape(server['apiVersion'])})" if server
                  else "Server: unreachable")
    else:
        show(data, args.output)
    if failure is not None:
        raise failure
    return EXIT_OK


def _audit_tail(args: argparse.Namespace) -> int:
    """Recent events, then (with -f) new ones as they come: each poll is a long poll of up to 25 s, and reading
    the trail writes nothing to it, so following never feeds itself."""
    client = client_for(args, waits=args.follow)
    fmt = args.output
    since = args.since
    if since is None:  # the last N events
        since = max(0, int(client.call("GET", "/v1/audit?limit=1&since=0")["lastSeq"]) - args.lines)
    while True:
        query = {"since": str(since), "limit": "1000"}
        if args.follow:
            query["wait"] = "25"
        page = client.call("GET", "/v1/audit?" + urlencode(query))
        for event in page["events"]:
            if fmt == "table":
                sys.stdout.write(f"{event['seq']:>8} {event['ts']} {event['type']:<18} {event['outcome']:<8} "
                                 f"{event.get('principal') or '-'} {cell(event.get('data'))}\n")
            else:
                emit_entry(event, fmt)
        sys.stdout.flush()
        since = page["next"]
        if not args.follow:
            return EXIT_OK


def _job_logs(args: argparse.Namespace) -> int:
    client = client_for(args, waits=args.follow)
    fmt = args.output
    path = f"/v1/jobs/{quote(args.id)}/logs" + ("?follow=true" if args.follow else "")
    for entry in client.stream(path):
        if fmt != "table":
            emit_entry(entry, fmt)
        elif "line" in entry:
            (sys.stdout if entry["stream"] == "stdout" else sys.stderr).write(entry["line"] + "\n")
        elif entry.get("event") == "end":
            console(stderr=True).print(f"[dim]-- job ended: {entry['status']}[/dim]")
    return EXIT_OK


def _policy_explain(args: argparse.Namespace) -> int:
    try:
        request = json.loads(Path(args.request).read_text() if args.request != "-" else sys.stdin.read())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.request}: {exc}") from None
    body = {"request": request}
    if args.subject:
        body["subject"] = args.subject
    data = client_for(args).call("POST", "/v1/policy/explain", body)
    if args.output == "table":
        explain_text(data)
    else:
        show(data, args.output)
    return EXIT_OK if data["allowed"] and not data.get("inputErrors") else EXIT_DENIED


def _jwks(args: argparse.Namespace) -> int:
    data = client_for(args).call("GET", "/v1/keys/jwks")
    listing(data, args.output, "keys", ("kid", "kty", "alg", "crv", "use"))
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    data = client_for(args).call("GET", "/v1/health")
    show(data, args.output)
    return EXIT_OK if data.get("status") == "ok" else EXIT_ERROR


def _job_run(args: argparse.Namespace) -> int:
    body = _job_body(args)
    record = client_for(args, waits=args.wait).call("POST", "/v1/jobs" + ("?wait=true" if args.wait else ""), body)
    if args.wait and args.output == "table":  # the record, then the output as the job printed it (once)
        show({k: v for k, v in record.items() if k not in ("stdout", "stderr")}, args.output)
        sys.stdout.write(record.get("stdout") or "")
        sys.stderr.write(record.get("stderr") or "")
    else:
        show(record, args.output)
    return EXIT_OK if not args.wait or record.get("status") == "succeeded" else EXIT_ERROR


def run(args: argparse.Namespace) -> int:
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is not None:  # commands registered with set_defaults(handler=...)
        return handler(args)
    fmt = args.output
    cmd = (args.group, getattr(args, "action", None))
    client = client_for(args)
    if cmd == ("job", "get"):
        show(client.call("GET", f"/v1/jobs/{quote(args.id)}"), fmt)
    elif cmd == ("job", "list"):
        query = {"limit": str(args.limit)}
        if args.all:
            query["all"] = "true"
        if args.status:
            query["status"] = args.status
        data = client.call("GET", "/v1/jobs?" + urlencode(query))
        listing(_job_rows(data, args.no_trunc) if fmt == "table" else data, fmt, "jobs", JOB_COLUMNS)
    elif cmd == ("job", "cancel"):
        show(client.call("DELETE", f"/v1/jobs/{quote(args.id)}"), fmt)
    elif cmd == ("policy", "status"):
        data = client.call("GET", "/v1/policy")
        if fmt == "table":
            rows = [{**b, "digest": b["digest"][:12]} for b in data["bundles"]]
            show(rows, fmt, ("name", "version", "digest", "directory", "activatedAt"))
            for r in data["rejections"]:
                console().print(f"[red]rejected[/red] {escape(r['bundle'])} {escape(r['version'])}: "
                                f"{len(r['problems'])} problems in {escape(', '.join(r['files']))}")
        else:
            show(data, fmt)
    elif cmd == ("policy", "reload"):
        show(client.call("POST", "/v1/policy/reload", {"allowRollback": args.rollback}), fmt)
    elif cmd == ("keys", "list"):
        listing(client.call("GET", "/v1/keys"), fmt, "keys",
                 ("kid", "algorithm", "state", "createdAt", "activatedAt", "graceUntil"))
    elif cmd == ("keys", "rotate"):
        show(client.call("POST", "/v1/keys/rotate", {"target": "secrets" if args.secrets else "signing"}), fmt)
    elif cmd == ("token", "issue"):
        body: dict[str, Any] = {"subject": args.subject}
        if args.ttl:
            body["ttlSeconds"] = _duration(args.ttl)
        data = client.call("POST", "/v1/tokens", body)
        if fmt == "table":
            sys.stdout.write(data["token"] + "\n")
        else:
            show(data, fmt)
    elif cmd == ("apikey", "create"):
        body = {"name": args.name}
        if args.ttl:
            body["ttlDays"] = max(1, _duration(args.ttl) // 86400)
        data = client.call("POST", "/v1/apikeys", body)
        if fmt == "table":
            sys.stdout.write(data["key"] + "\n")
            console(stderr=True).print("[yellow]shown once: onexd keeps only its hash[/yellow]")
        else:
            show(data, fmt)
    elif cmd == ("apikey", "list"):
        listing(client.call("GET", "/v1/apikeys"), fmt, "apikeys",
                 ("name", "keyId", "state", "createdAt", "expiresAt", "revokedAt"))
    elif cmd == ("apikey", "revoke"):
        show(client.call("DELETE", f"/v1/apikeys/{quote(args.name)}"), fmt)
    elif cmd == ("zone", "list"):
        listing(client.call("GET", "/v1/zones"), fmt, "zones", ("name", "mode", "network", "proxy", "egress"))
    elif cmd == ("pool", "list"):
        listing(client.call("GET", "/v1/pool"), fmt, "keys",
                ("target", "size", "idle", "ages", "claims", "misses", "refills", "policy", "key"))
    elif cmd == ("audit", "verify"):
        data = client.call("GET", "/v1/audit/verify")
        show(data, fmt)
        return EXIT_OK if data["ok"] else EXIT_DENIED
    elif cmd == ("principal", "unlock"):  # incident response: lift a lockout (users:write)
        show(client.call("POST", f"/v1/principals/{quote(args.name, safe='')}/unlock"), fmt)
    return EXIT_OK


def _duration(text: str) -> int:
    """`90d`, `12h`, `30m`, `45s` or plain seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if text[-1:] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a duration (like 90d, 12h, 30m, 45s)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onexctl", description="Client of the onexd socket API.")
    sub = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    sub.add_parser("version", help="client and server versions").set_defaults(handler=_version)
    sub.add_parser("health", help="ok or degraded (exit 1 when degraded)").set_defaults(handler=_health)
    job = sub.add_parser("job", help="run, inspect and cancel jobs").add_subparsers(dest="action", required=True,
                                                                                  metavar="ACTION")
    p = job.add_parser("run", help="submit a job (NODE, or --profile P -- CMD...)")
    p.add_argument("--input", metavar="JSON", help="the job input as JSON; - reads it from standard input")
    p.add_argument("--input-file", metavar="FILE", help="read the job input (JSON) from FILE (- for stdin)")
    p.add_argument("--profile", metavar="PROFILE")
    p.add_argument("--timeout", type=int, metavar="SECONDS")
    p.add_argument("--wait", action="store_true", help="wait for the result (exit 1 unless it succeeded)")
    p.add_argument("target", nargs="*", metavar="NODE | -- CMD ARG...")
    p.set_defaults(handler=_job_run)
    id_help = "a job id or a unique prefix of it (at least 8 characters)"
    for name, text in (("get", "one job"), ("cancel", "cancel a job")):
        job.add_parser(name, help=text).add_argument("id", metavar="JOB_ID", help=id_help)
    p = job.add_parser("list", help="own jobs, newest first (--all: everyone's, needs jobs:read-all)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--status", choices=("queued", "running", "succeeded", "failed", "timed_out", "oom_killed",
                                        "cancelled", "error"))
    p.add_argument("--no-trunc", action="store_true", help="show full job ids (the table shows a short prefix)")
    p = job.add_parser("logs", help="a job's output")
    p.add_argument("id", metavar="JOB_ID", help=id_help)
    p.add_argument("-f", "--follow", action="store_true", help="wait for a running job to end")
    p.set_defaults(handler=_job_logs)
    pol = sub.add_parser("policy", help="policy status, reload and explain").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    pol.add_parser("status", help="active bundles and rejections")
    p = pol.add_parser("reload", help="reload the policy directory now")
    p.add_argument("--rollback", action="append", default=[], metavar="BUNDLE",
                   help="explicitly allow BUNDLE to go back to a lower version (repeatable)")
    p = pol.add_parser("explain", help="why a request would be allowed or denied (nothing runs)")
    p.add_argument("request", metavar="REQUEST.json", help="the request ({node, input} or {profile, command}); "
                                                           "- for stdin")
    p.add_argument("--as", dest="subject", metavar="KIND:NAME", help="another subject (needs policy:read)")
    p.set_defaults(handler=_policy_explain)
    keys = sub.add_parser("keys", help="onexd's signing keys").add_subparsers(dest="action", required=True,
                                                                             metavar="ACTION")
    keys.add_parser("list", help="keys and their states (keys:read)")
    keys.add_parser("jwks", help="the published JWKS").set_defaults(handler=_jwks)
    p = keys.add_parser("rotate", help="rotate the signing keys now (keys:rotate)")
    p.add_argument("--secrets", action="store_true", help="rotate the secret store's data key instead")
    token = sub.add_parser("token", help="tokens").add_subparsers(dest="action", required=True, metavar="ACTION")
    p = token.add_parser("issue", help="issue a token (tokens:issue)")
    p.add_argument("--subject", required=True)
    p.add_argument("--ttl", metavar="DURATION", help="like 1h or 600 (at most the daemon's token TTL)")
    apikey = sub.add_parser("apikey", help="API keys").add_subparsers(dest="action", required=True, metavar="ACTION")
    p = apikey.add_parser("create", help="create a key, shown once (apikeys:manage)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--ttl", metavar="DURATION", help="like 90d (default: the daemon's)")
    apikey.add_parser("list", help="keys, never their secrets")
    apikey.add_parser("revoke", help="revoke a key").add_argument("name", metavar="NAME")
    zone = sub.add_parser("zone", help="network zones").add_subparsers(dest="action", required=True,
                                                                       metavar="ACTION")
    zone.add_parser("list", help="zones, their mode, network, proxy state and allowlist (policy:read)")
    pool = sub.add_parser("pool", help="the warm pool").add_subparsers(dest="action", required=True,
                                                                     metavar="ACTION")
    pool.add_parser("list", help="pool keys: target, wanted size, idle slots and their ages (monitoring:read)")
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="action", required=True,
                                                                           metavar="ACTION")
    p = audit.add_parser("tail", help="recent events (audit:read)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events (long poll)")
    p.add_argument("-n", "--lines", type=int, default=20)
    p.add_argument("--since", type=int, metavar="SEQ")
    p.set_defaults(handler=_audit_tail)
    audit.add_parser("verify", help="verify the trail (exit 3 when tampered)")
    principal = sub.add_parser("principal", help="locked-out principals").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    principal.add_parser("unlock", help="lift a lockout (needs users:write)").add_argument(
        "name", metavar="PRINCIPAL", help="as audit events name it: Token:ci-bot, UnixUser:alice")
    p = sub.add_parser("completion", help='shell completion: eval "$(onexctl completion bash)"')
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(handler=_completion)
    # Subcommands are registered above (or by a register(sub) call placed above); the global options last.
    add_global_options(parser, global_options())
    return parser


def _completion(args: argparse.Namespace) -> int:
    from onexd.cli.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = console(stderr=True)
    try:
        return run(args)
    except UsageError as exc:
        err.print(f"[red]onexctl: usage:[/red] {escape(str(exc))}")
        return exit_code_for(exc)
    except ApiFailure as exc:
        err.print(f"[red]onexctl: {exc.status}:[/red] {escape(str(exc))}")
        for reason in exc.error.get("reasons", []):
            err.print(f"  {escape(reason['code'])}: {escape(reason['message'])}")
        if exc.status == 429:
            err.print("  (rate limited: try again shortly)")
        cid = exc.error.get("correlationId")
        if cid:
            err.print(f"  [dim]correlation id {escape(cid)}[/dim]")
        return exit_code_for(exc)
    except OnexdError as exc:
        err.print(f"[red]onexctl: error:[/red] {escape(str(exc))}")
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
