"""`onexctl`: the client of the socket API. Deliberately light: stdlib HTTP over the Unix socket, rich for tables.

Exit codes: 0 ok, 1 error (including a job that did not succeed with --wait), 2 usage, 3 denied or invalid.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from rich.markup import escape
from rich.table import Table

from onexd.cli.exits import EXIT_DENIED, EXIT_ERROR, EXIT_OK, exit_code_for
from onexd.cli.output import console, print_json, print_yaml
from onexd.errors import ApiFailure as ApiFailure
from onexd.errors import DaemonUnreachable, OnexdError, UsageError

DEFAULT_SOCKET = "/run/onexd/onexd.sock"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("onexd", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Client:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def _open(self, method: str, path: str, body: Any = None) -> http.client.HTTPResponse:
        conn = UnixHTTPConnection(self.socket_path, timeout=None)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
            return conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(f"cannot connect to {self.socket_path}: {exc.strerror}; is onexd running? "
                                  "(--socket or ONEXD_SOCKET)") from None
        except PermissionError:
            raise DaemonUnreachable(f"permission denied on {self.socket_path}: join the socket's group") from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._open(method, path, body)
        data = response.read()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"error": {"message": data.decode(errors="replace")[:200]}}
        if response.status >= 400:
            raise ApiFailure(response.status, parsed)
        return parsed

    def stream(self, path: str) -> Iterator[dict[str, Any]]:
        response = self._open("GET", path)
        if response.status >= 400:
            raise ApiFailure(response.status, json.loads(response.read() or b"{}"))
        for line in response:
            if line.strip():
                yield json.loads(line)


def _show(data: Any, fmt: str, columns: Sequence[str] | None = None) -> None:
    if fmt == "json":
        print_json(data)
    elif fmt == "yaml":
        print_yaml(data)
    elif columns is not None and isinstance(data, list):
        table = Table(*columns)
        for row in data:
            table.add_row(*(escape(_cell(row.get(c))) for c in columns))
        console().print(table)
    elif isinstance(data, dict):
        table = Table(show_header=False)
        for key, value in data.items():
            table.add_row(key, escape(_cell(value)))
        console().print(table)
    else:
        print_json(data)


def _listing(data: dict[str, Any], fmt: str, key: str, columns: Sequence[str]) -> None:
    """A list answer: the rows under `key` as a table, or the whole answer as JSON/YAML."""
    if fmt == "table":
        _show(data[key], fmt, columns)
    else:
        _show(data, fmt)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


JOB_COLUMNS = ("id", "status", "node", "profile", "exitCode", "durationMs", "principal", "createdAt")


def _job_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.profile:
        if not args.target:
            raise UsageError("--profile needs a command: onexctl job run --profile P -- CMD [ARG...]")
        body: dict[str, Any] = {"profile": args.profile, "command": args.target}
    else:
        if len(args.target) != 1:
            raise UsageError("give exactly one NODE (or --profile P -- CMD...)")
        try:
            body = {"node": args.target[0], "input": json.loads(args.input) if args.input else None}
        except ValueError as exc:
            raise UsageError(f"--input is not JSON: {exc}") from None
    if args.timeout:
        body["timeoutSeconds"] = args.timeout
    return body


def run(args: argparse.Namespace) -> int:
    client = Client(args.socket)
    fmt = args.output
    cmd = (args.group, getattr(args, "action", None))
    if cmd == ("version", None):
        _show(client.call("GET", "/version"), fmt)
    elif cmd == ("health", None):
        data = client.call("GET", "/v1/health")
        _show(data, fmt)
        return EXIT_OK if data.get("status") == "ok" else EXIT_ERROR
    elif cmd == ("job", "run"):
        record = client.call("POST", "/v1/jobs" + ("?wait=true" if args.wait else ""), _job_body(args))
        _show(record, fmt)
        if args.wait and fmt == "table" and record.get("stdout"):
            sys.stdout.write(record["stdout"])
        return EXIT_OK if not args.wait or record.get("status") == "succeeded" else EXIT_ERROR
    elif cmd == ("job", "get"):
        _show(client.call("GET", f"/v1/jobs/{quote(args.id)}"), fmt)
    elif cmd == ("job", "list"):
        query = {"limit": str(args.limit)}
        if args.all:
            query["all"] = "true"
        if args.status:
            query["status"] = args.status
        _listing(client.call("GET", "/v1/jobs?" + urlencode(query)), fmt, "jobs", JOB_COLUMNS)
    elif cmd == ("job", "logs"):
        path = f"/v1/jobs/{quote(args.id)}/logs" + ("?follow=true" if args.follow else "")
        for entry in client.stream(path):
            if fmt == "json":
                sys.stdout.write(json.dumps(entry) + "\n")
            elif "line" in entry:
                (sys.stdout if entry["stream"] == "stdout" else sys.stderr).write(entry["line"] + "\n")
            elif entry.get("event") == "end":
                console(stderr=True).print(f"[dim]-- job ended: {entry['status']}[/dim]")
    elif cmd == ("job", "cancel"):
        _show(client.call("DELETE", f"/v1/jobs/{quote(args.id)}"), fmt)
    elif cmd == ("policy", "status"):
        data = client.call("GET", "/v1/policy")
        if fmt == "table":
            _show(data["bundles"], fmt, ("name", "version", "digest", "directory", "activatedAt"))
            for r in data["rejections"]:
                console().print(f"[red]rejected[/red] {escape(r['bundle'])} {escape(r['version'])}: "
                                f"{len(r['problems'])} problems in {escape(', '.join(r['files']))}")
        else:
            _show(data, fmt)
    elif cmd == ("policy", "reload"):
        _show(client.call("POST", "/v1/policy/reload", {"allowRollback": args.rollback}), fmt)
    elif cmd == ("keys", "list"):
        _listing(client.call("GET", "/v1/keys"), fmt, "keys",
                 ("kid", "algorithm", "state", "createdAt", "activatedAt", "graceUntil"))
    elif cmd == ("keys", "rotate"):
        _show(client.call("POST", "/v1/keys/rotate", {"target": "secrets" if args.secrets else "signing"}), fmt)
    elif cmd == ("keys", "jwks"):
        print_json(client.call("GET", "/v1/keys/jwks"))
    elif cmd == ("token", "issue"):
        body: dict[str, Any] = {"subject": args.subject}
        if args.ttl:
            body["ttlSeconds"] = _duration(args.ttl)
        data = client.call("POST", "/v1/tokens", body)
        if fmt == "table":
            sys.stdout.write(data["token"] + "\n")
        else:
            _show(data, fmt)
    elif cmd == ("apikey", "create"):
        body = {"name": args.name}
        if args.ttl:
            body["ttlDays"] = max(1, _duration(args.ttl) // 86400)
        data = client.call("POST", "/v1/apikeys", body)
        if fmt == "table":
            sys.stdout.write(data["key"] + "\n")
            console(stderr=True).print("[yellow]shown once: onexd keeps only its hash[/yellow]")
        else:
            _show(data, fmt)
    elif cmd == ("apikey", "list"):
        _listing(client.call("GET", "/v1/apikeys"), fmt, "apikeys",
                 ("name", "keyId", "state", "createdAt", "expiresAt", "revokedAt"))
    elif cmd == ("apikey", "revoke"):
        _show(client.call("DELETE", f"/v1/apikeys/{quote(args.name)}"), fmt)
    elif cmd == ("zone", "list"):
        _listing(client.call("GET", "/v1/zones"), fmt, "zones", ("name", "mode", "network", "proxy", "egress"))
    elif cmd == ("pool", "list"):
        _listing(client.call("GET", "/v1/pool"), fmt, "keys",
                 ("target", "size", "idle", "ages", "claims", "misses", "refills", "policy", "key"))
    elif cmd == ("audit", "tail"):
        since = args.since
        if since is None:  # the last N events
            since = max(0, int(client.call("GET", "/v1/audit?limit=1&since=0")["lastSeq"]) - args.lines)
        while True:
            page = client.call("GET", f"/v1/audit?since={since}&limit=1000")
            for event in page["events"]:
                sys.stdout.write(json.dumps(event) + "\n" if fmt == "json" else
                                 f"{event['seq']:>8} {event['ts']} {event['type']:<18} {event['outcome']:<8} "
                                 f"{event.get('principal') or '-'} {json.dumps(event.get('data'))}\n")
            sys.stdout.flush()
            since = page["next"]
            if not args.follow:
                break
            if not page["events"]:
                time.sleep(1)
    elif cmd == ("audit", "verify"):
        data = client.call("GET", "/v1/audit/verify")
        _show(data, fmt)
        return EXIT_OK if data["ok"] else EXIT_DENIED
    elif cmd == ("policy", "explain"):
        try:
            request = json.loads(Path(args.request).read_text() if args.request != "-" else sys.stdin.read())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.request}: {exc}") from None
        body = {"request": request}
        if args.subject:
            body["subject"] = args.subject
        data = client.call("POST", "/v1/policy/explain", body)
        _show(data, fmt)
        return EXIT_OK if data["allowed"] and not data.get("inputErrors") else EXIT_DENIED
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
    parser.add_argument("--socket", default=os.environ.get("ONEXD_SOCKET", DEFAULT_SOCKET), metavar="PATH")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    sub = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    sub.add_parser("version", help="daemon and API version")
    sub.add_parser("health", help="ok or degraded (exit 1 when degraded)")
    job = sub.add_parser("job", help="run, inspect and cancel jobs").add_subparsers(dest="action", required=True,
                                                                                  metavar="ACTION")
    p = job.add_parser("run", help="submit a job (NODE, or --profile P -- CMD...)")
    p.add_argument("--input", metavar="JSON")
    p.add_argument("--profile", metavar="PROFILE")
    p.add_argument("--timeout", type=int, metavar="SECONDS")
    p.add_argument("--wait", action="store_true", help="wait for the result (exit 1 unless it succeeded)")
    p.add_argument("target", nargs="*", metavar="NODE | -- CMD ARG...")
    for name, text in (("get", "one job"), ("cancel", "cancel a job")):
        job.add_parser(name, help=text).add_argument("id", metavar="JOB_ID")
    p = job.add_parser("list", help="own jobs, newest first (--all: everyone's, needs jobs:read-all)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--status")
    p = job.add_parser("logs", help="a job's output")
    p.add_argument("id", metavar="JOB_ID")
    p.add_argument("-f", "--follow", action="store_true", help="wait for a running job to end")
    pol = sub.add_parser("policy", help="policy status, reload and explain").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    pol.add_parser("status", help="active bundles and rejections")
    p = pol.add_parser("reload", help="reload the policy directory now")
    p.add_argument("--rollback", action="append", default=[], metavar="BUNDLE",
                   help="explicitly allow BUNDLE to go back to a lower version (repeatable)")
    p = pol.add_parser("explain", help="why a request would be allowed or denied (nothing runs)")
    p.add_argument("request", metavar="REQUEST.json")
    p.add_argument("--as", dest="subject", metavar="KIND:NAME", help="another subject (needs policy:read)")
    keys = sub.add_parser("keys", help="onexd's signing keys").add_subparsers(dest="action", required=True,
                                                                             metavar="ACTION")
    keys.add_parser("list", help="keys and their states (keys:read)")
    keys.add_parser("jwks", help="the published JWKS")
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
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--lines", type=int, default=20)
    p.add_argument("--since", type=int, metavar="SEQ")
    audit.add_parser("verify", help="verify the trail (exit 3 when tampered)")
    return parser


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
