"""Kubernetes objects of a policy: an allowed job's (and its zone proxy's) objects as `onexd k8s render` prints
them, the custom seccomp profiles a cluster's nodes need, and the check of a Pod against Pod Security
"restricted". Pure, like k8s_manifests.py, which it builds on; it
sits with the jobs room (it reads the zone proxy's code from onexd/jobs/zones.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from onexd.engine.decide import Decision
from onexd.engine.request import JobRequest
from onexd.engine.translate import RUNTIME_DEFAULT, HostPaths, proxy_spec, seccomp_json, translate
from onexd.jobs.zones import proxy_code
from onexd.policy.snapshot import Snapshot
from onexd.runtime.k8s_manifests import RESTRICTED_CAP_ADDS, Manifest, job_objects, proxy_objects, seccomp_file_name
from onexd.spec import MANAGED_LABEL, NODE_MOUNT, SECRETS_MOUNT


def seccomp_spo(name: str, profile: Mapping[str, Any], namespace: str) -> Manifest:
    """A custom profile as a Security Profiles Operator SeccompProfile (it installs the file on every node)."""
    allowed = ("defaultAction", "architectures", "syscalls", "flags", "listenerPath", "listenerMetadata")
    return {"apiVersion": "security-profiles-operator.x-k8s.io/v1beta1", "kind": "SeccompProfile",
            "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_LABEL: "true"}},
            "spec": {k: profile[k] for k in allowed if k in profile}}



def proxy_config(snapshot: Snapshot, zone: str) -> bytes:
    """The allowlist file the zone's proxy reads (the same content EgressZones writes on Docker)."""
    rules = [r.model_dump(mode="json", exclude_none=True) for r in snapshot.zones[zone].egress]
    return json.dumps({"zone": zone, "policy": snapshot.digest, "egress": rules}).encode()


def render_job(snapshot: Snapshot, decision: Decision, request: JobRequest, job_id: str, namespace: str,
               seccomp_dir: str = "onexd") -> list[Manifest]:
    """Every object onexd would create for an allowed job, secret values redacted (for `onexd k8s render`)."""
    assert decision.sandbox is not None
    node = snapshot.nodes[request.node] if request.node is not None else None
    has_source = node is not None and node.has_source
    paths = HostPaths(node_source=NODE_MOUNT if has_source else None,
                      secrets_dir=SECRETS_MOUNT if decision.sandbox.secrets else None)
    spec = translate(snapshot, decision, request, job_id, paths)
    files = {NODE_MOUNT: dict(node.source_files)} if node is not None and has_source else {}
    secrets = dict.fromkeys(decision.sandbox.secrets, b"") if decision.sandbox.secrets else None
    objects = job_objects(spec, namespace, files, secrets, seccomp_dir=seccomp_dir, redact=True).all()
    zone = decision.sandbox.zone
    if snapshot.zones[zone].mode == "egress":
        proxy = proxy_spec(zone, snapshot.digest, "/app/proxy", "/etc/onexd-zone", "egress")
        proxy_files = {"/app/proxy": proxy_code(), "/etc/onexd-zone": {"config.json": proxy_config(snapshot, zone)}}
        objects += proxy_objects(proxy, namespace, proxy_files, seccomp_dir=seccomp_dir)
    return objects


def seccomp_files(snapshot: Snapshot) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every custom seccomp profile the policy's sandbox profiles use: file name -> (policy name, profile)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for profile in snapshot.profiles.values():
        name = profile.seccompProfile
        if name == RUNTIME_DEFAULT:
            continue
        canonical = seccomp_json(dict(snapshot.seccomp[name]))  # exactly what the Docker backend applies
        out[seccomp_file_name(name, canonical)] = (name, json.loads(canonical))
    return out


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """The Pod Security Standards "restricted" rules (baseline included) a pod spec breaks; [] when it passes."""
    problems: list[str] = []
    for field_name in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field_name):
            problems.append(f"{field_name} is set")
    psc = pod.get("securityContext") or {}
    containers: Sequence[Mapping[str, Any]] = [*(pod.get("containers") or []), *(pod.get("initContainers") or []),
                                               *(pod.get("ephemeralContainers") or [])]
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                         "projected", "secret"}:
            problems.append(f"volume {volume.get('name')} has a restricted type {sorted(kinds)}")
    for option in ("sysctls",):
        if psc.get(option):
            problems.append(f"pod securityContext sets {option}")
    for c in containers:
        name = c.get("name")
        csc = c.get("securityContext") or {}
        if csc.get("privileged"):
            problems.append(f"{name}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - RESTRICTED_CAP_ADDS:
            problems.append(f"{name}: adds capabilities beyond NET_BIND_SERVICE")
        run_as_non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp or 'unset'}")
        if csc.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount is not Default")
        if (csc.get("seLinuxOptions") or {}).get("type") not in (None, "", "container_t", "container_init_t",
                                                                 "container_kvm_t"):
            problems.append(f"{name}: seLinuxOptions type")
        if (csc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{name}: AppArmor unconfined")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems
