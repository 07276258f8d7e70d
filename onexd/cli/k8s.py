"""`onexd k8s render|seccomp`: what the kubernetes backend would create, for review and `kubectl apply
--dry-run=server`, and the custom seccomp profiles the nodes' kubelets need. Wiring only."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

from onexd.cli.exits import EXIT_INVALID, EXIT_OK
from onexd.cli.output import console
from onexd.cli.policy_cmds import parse_request, request_body, valid_snapshot
from onexd.engine.decide import decide
from onexd.identity.principal import parse_subject, unix_principal
from onexd.jobs.records import new_job_id
from onexd.policy.schema import InputValidator
from onexd.policy.yamlsafe import dump_yaml
from onexd.runtime.k8s_render import render_job, seccomp_files, seccomp_spo


def manifests_yaml(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, one object per document."""
    return "".join(f"---\n{dump_yaml(obj)}" for obj in objects)


def cmd_render(args: argparse.Namespace) -> int:
    body = request_body(args, "onexd k8s render")
    request = parse_request(body, "request")
    snapshot = valid_snapshot(args.policy_dir)
    principal = parse_subject(args.subject) if args.subject else unix_principal(os.getuid(), os.getgid())
    decision = decide(snapshot, principal, request)
    errors: list[str] = []
    if decision.allowed and request.node is not None:
        schema = snapshot.nodes[request.node].spec.inputSchema
        if schema is not None:
            errors = InputValidator(schema).errors(request.input)
    if not decision.allowed or errors:  # the same verdict as `onexd policy explain`, and nothing rendered
        err = console(stderr=True)
        verdict = "INVALID INPUT" if decision.allowed else "DENIED"
        err.print(f"[red bold]{verdict}[/red bold]: {escape(decision.principal)} -> {escape(decision.target)}")
        for reason in decision.reasons:
            err.print(f"  {escape(reason.code)}  {escape(reason.message)}")
        for error in errors:
            err.print(f"  input  {escape(error)}")
        return EXIT_INVALID
    job_id = args.job_id or new_job_id(time.time())
    objects = render_job(snapshot, decision, request, job_id, args.namespace, args.seccomp_dir)
    print(manifests_yaml(objects), end="")
    return EXIT_OK


def cmd_seccomp(args: argparse.Namespace) -> int:
    snapshot = valid_snapshot(args.policy_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, (name, profile) in sorted(seccomp_files(snapshot).items()):
        if args.format == "spo":
            target = out / f"{file_name.removesuffix('.json')}.yaml"
            target.write_text(manifests_yaml([seccomp_spo(file_name.removesuffix(".json"), profile,
                                                          args.namespace)]))
        else:
            target = out / file_name
            target.write_text(json.dumps(profile, indent=2, sort_keys=True) + "\n")
        written.append(str(target))
        console(stderr=True).print(f"{escape(name)} -> {escape(str(target))}")
    if not written:
        console(stderr=True).print("no custom seccomp profiles in use (runtime-default only)")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `onexd k8s ...` to the top-level subcommands."""
    k8s = sub.add_parser("k8s", help="the Kubernetes backend: render a job's objects, export seccomp profiles")
    ksub = k8s.add_subparsers(dest="k8s_command", required=True, metavar="SUBCOMMAND")
    p = ksub.add_parser("render", help="print every object a job would create as YAML (0 allowed, 3 denied)")
    p.add_argument("--policy-dir", required=True, metavar="DIR")
    p.add_argument("--as", dest="subject", metavar="KIND:NAME", help="default: the calling Unix user")
    p.add_argument("--input", metavar="JSON", help="the job input (JSON)")
    p.add_argument("--profile", metavar="PROFILE", help="render an ad-hoc command with this profile")
    p.add_argument("--namespace", default="onexd", metavar="NS")
    p.add_argument("--job-id", metavar="ID", help="job id to render with (default: a new one)")
    p.add_argument("--seccomp-dir", default="onexd", metavar="DIR",
                   help="directory of custom profiles under the kubelet's seccomp root (with the Security "
                        "Profiles Operator: operator/NAMESPACE)")
    p.add_argument("target", nargs="*", metavar="NODE | -- CMD ARG...")
    p.set_defaults(func=cmd_render)
    p = ksub.add_parser("seccomp", help="write the custom seccomp profiles for the nodes' kubelet directory")
    p.add_argument("--policy-dir", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--format", choices=("json", "spo"), default="json",
                   help="json: files for /var/lib/kubelet/seccomp/onexd/; spo: SeccompProfile objects")
    p.add_argument("--namespace", default="onexd", metavar="NS", help="namespace of the SeccompProfile objects")
    p.set_defaults(func=cmd_seccomp)
