"""`onexd run` (one job without the daemon) and `onexd image build` (the runner images, offline)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from rich.markup import escape

from onexd.cli.exits import EXIT_ERROR, EXIT_INVALID, EXIT_OK
from onexd.cli.output import console, explain_text
from onexd.cli.policy_cmds import emit, parse_request, request_body, valid_snapshot
from onexd.cli.state_cmds import open_secret_store
from onexd.identity.principal import parse_subject, unix_principal
from onexd.jobs.runner import InvalidInput, JobRunner
from onexd.jobs.zones import EgressZones
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.images import build_images
from onexd.runtime.kmsg import KernelLog
from onexd.secrets.staging import check_staging_dir, default_staging_dir


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
    body = request_body(args, "onexd run")
    if args.timeout is not None:
        body["timeoutSeconds"] = args.timeout
    request = parse_request(body, "request")
    snapshot = valid_snapshot(args.policy_dir)
    principal = parse_subject(args.subject) if args.subject else unix_principal(os.getuid(), os.getgid())
    staging = check_staging_dir(Path(args.staging_dir) if args.staging_dir else default_staging_dir())
    runtime = _runtime(args)
    zones = EgressZones(runtime, Path(args.state_dir), args.egress_network)
    store_path = Path(args.state_dir) / "secrets" / "store.json"
    secret_store = open_secret_store(args) if store_path.exists() else None  # the daemon's encrypted store, if any
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
        emit({**outcome.decision.as_dict(snapshot), "inputErrors": []}, args.output, explain_text)
        return EXIT_INVALID
    record = outcome.record.as_dict()
    emit(record, args.output, _record_text)
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


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def register_image(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`onexd image build`."""
    docker_host = _docker_host()
    image = sub.add_parser("image", help="runner images")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="SUBCOMMAND")
    p = isub.add_parser("build", help="build the runner images offline (skips those up to date)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="onexd/runner-busybox, "
                   "onexd/runner-python, or the test image onexd/test-systemd (repeatable)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--docker-host", default=docker_host, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_image_build)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`onexd run`."""
    docker_host = _docker_host()
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
