"""ContainerSpec -> Kubernetes manifests. Pure: the Kubernetes form of the security model, golden-tested.

One job is a suspended batch/v1 Job (one Pod, locked down to Pod Security "restricted"), the ConfigMaps that
carry read-only code, a Secret with the job's secrets, and the NetworkPolicies of its zone. Settings Kubernetes
cannot express per Pod (pids, nofile) are recorded as annotations and provided by the node (docs/kubernetes.md);
capability adds beyond what "restricted" allows are refused here, never dropped.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onexd.engine.translate import (
    PROXY_ALIAS,
    PROXY_PORT,
    RUNTIME_DEFAULT,
    proxy_name,
)
from onexd.errors import KubernetesUnsupported
from onexd.spec import JOB_LABEL, MANAGED_LABEL, POLICY_LABEL, SECRETS_MOUNT, ContainerSpec

Manifest = dict[str, Any]

ZONE_LABEL = "onexd.zone"
ROLE_LABEL = "onexd.role"
DIGEST_ANNOTATION = "onexd.policy-digest"
PIDS_ANNOTATION = "onexd.pids-limit"
NOFILE_ANNOTATION = "onexd.nofile-limit"
CONTAINER = "job"
DEFAULT_DENY = "onexd-default-deny"
# The only capability Pod Security "restricted" lets a container add.
RESTRICTED_CAP_ADDS = frozenset({"NET_BIND_SERVICE"})
# A ConfigMap (and a Secret) holds at most 1 MiB: larger node code cannot be shipped this way.
MAX_OBJECT_BYTES = 1024 * 1024
# The Job outlives its pod this long at most if onexd could not delete it (it always tries first).
TTL_AFTER_FINISHED_S = 600
# Container logs and the (read-only) root filesystem's scratch: the job's output budget plus room for the
# runtime's own files. tmpfs counts against memory, not here.
EPHEMERAL_BASE_BYTES = 64 * 1024 * 1024
# Placeholder for the Job's uid in a rendered manifest (onexd knows it only once the Job exists).
UID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
REDACTED = base64.b64encode(b"<redacted>").decode()


@dataclass(frozen=True, slots=True)
class JobObjects:
    """What run() creates, in order: the zone's policies, then the Job, then what the Job owns."""

    network_policies: tuple[Manifest, ...]
    job: Manifest
    owned: tuple[Manifest, ...]  # ConfigMaps and the Secret, each owned by the Job

    def all(self) -> list[Manifest]:
        return _fresh([*self.network_policies, self.job, *self.owned])


def _fresh(objects: list[Manifest]) -> list[Manifest]:
    """Deep copies: no dict is shared between objects (a caller may change one; YAML would alias them)."""
    copied: list[Manifest] = json.loads(json.dumps(objects))
    return copied


def _uid_gid(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def policy_label(digest: str) -> str:
    """A label value holds 63 characters; the full digest is an annotation."""
    return digest[:32]


def seccomp_file_name(name: str, profile_json: str) -> str:
    """The file a custom profile has under the kubelet's seccomp directory. The content digest is in the name:
    a changed profile never runs with a stale file; a missing file fails the pod (closed)."""
    return f"{name}-{hashlib.sha256(profile_json.encode()).hexdigest()[:12]}.json"


def configmap_name(job_name: str, index: int) -> str:
    return f"{job_name}-files-{index}"


def secret_name(job_name: str) -> str:
    return f"{job_name}-secrets"


def zone_policy_name(zone: str) -> str:
    return f"onexd-zone-{zone}"


def proxy_service_host(zone: str) -> str:
    return proxy_name(zone)


def check_supported(spec: ContainerSpec) -> None:
    """Refuse what this backend cannot give a Pod without weakening it."""
    extra = sorted(set(spec.cap_add) - RESTRICTED_CAP_ADDS)
    if extra:
        raise KubernetesUnsupported(
            f"profile adds capabilities {', '.join(extra)}: Pod Security \"restricted\" allows only "
            "NET_BIND_SERVICE, so the kubernetes backend refuses this job")
    if not (spec.read_only_rootfs and spec.no_new_privileges and not spec.privileged and spec.cap_drop == ("ALL",)):
        raise KubernetesUnsupported("the spec is not locked down (read-only root, no-new-privileges, caps dropped)")
    uid, gid = _uid_gid(spec.user)
    if uid == 0 or gid == 0:
        raise KubernetesUnsupported("the job would run as root")


def _labels(spec: ContainerSpec) -> dict[str, str]:
    labels = dict(spec.labels)
    if POLICY_LABEL in labels:
        labels[POLICY_LABEL] = policy_label(labels[POLICY_LABEL])
    labels[ZONE_LABEL] = spec.network.zone
    return labels


def _seccomp(spec: ContainerSpec, seccomp_dir: str) -> dict[str, str]:
    if spec.seccomp.profile_json is None or spec.seccomp.name == RUNTIME_DEFAULT:
        return {"type": "RuntimeDefault"}
    return {"type": "Localhost",
            "localhostProfile": f"{seccomp_dir}/{seccomp_file_name(spec.seccomp.name, spec.seccomp.profile_json)}"}


def _resources(spec: ContainerSpec) -> dict[str, dict[str, str]]:
    limits = spec.limits
    bound = {"memory": str(limits.memory_bytes), "cpu": f"{max(1, limits.nano_cpus // 1_000_000)}m",
             "ephemeral-storage": str(EPHEMERAL_BASE_BYTES + limits.output_limit_bytes)}
    # Requests equal limits: the Pod is Guaranteed QoS, never overcommitted past what policy says.
    return {"limits": bound, "requests": dict(bound)}


def _env(spec: ContainerSpec) -> list[dict[str, str]]:
    """The spec's environment; the proxy address points at the zone's Service (one namespace, many zones)."""
    docker_url = f"http://{PROXY_ALIAS}:{PROXY_PORT}"
    k8s_url = f"http://{proxy_service_host(spec.network.zone)}:{PROXY_PORT}"
    return [{"name": k, "value": v.replace(docker_url, k8s_url)} for k, v in spec.env]


def _files_configmap(name: str, namespace: str, labels: Mapping[str, str], files: Mapping[str, bytes]
                     ) -> tuple[Manifest, list[dict[str, str]]]:
    """A ConfigMap holding a directory; keys are flat, items put each back at its relative path."""
    total = sum(len(v) for v in files.values())
    if total > MAX_OBJECT_BYTES:
        raise KubernetesUnsupported(f"{total} bytes of files do not fit a ConfigMap (1 MiB at most)")
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    items: list[dict[str, str]] = []
    for index, rel in enumerate(sorted(files)):
        key = f"f{index}"
        content = files[rel]
        try:
            data[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode()
        items.append({"key": key, "path": rel})
    manifest: Manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                          "immutable": True, "data": data}
    if binary:
        manifest["binaryData"] = binary
    return manifest, items


def _owner(job_name: str, job_uid: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
             "controller": False, "blockOwnerDeletion": True}]


def pod_spec(spec: ContainerSpec, volumes: Sequence[Manifest], mounts: Sequence[Manifest], seccomp_dir: str,
             stdin: bool = True) -> Manifest:
    """The locked-down Pod: Pod Security "restricted" by construction, and every invariant of the Docker
    envelope Kubernetes can express. `volumes` and `mounts` are the code and secret volumes; tmpfs is added."""
    uid, gid = _uid_gid(spec.user)
    volumes, mounts = list(volumes), list(mounts)
    for index, tmpfs in enumerate(spec.tmpfs):
        # Memory-backed and size-bounded like Docker's tmpfs (the size counts against the memory limit).
        volumes.append({"name": f"tmpfs-{index}", "emptyDir": {"medium": "Memory", "sizeLimit": str(tmpfs.size_bytes)}})
        mounts.append({"name": f"tmpfs-{index}", "mountPath": tmpfs.target})
    container: Manifest = {
        "name": CONTAINER,
        "image": spec.image,
        # `command` replaces the image ENTRYPOINT: the argv is authoritative, as on Docker.
        "command": list(spec.command),
        "args": [],
        "env": _env(spec),
        "workingDir": spec.working_dir,
        "imagePullPolicy": "IfNotPresent",
        "stdin": stdin,
        "stdinOnce": stdin,
        "tty": False,
        "resources": _resources(spec),
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid,
            "readOnlyRootFilesystem": spec.read_only_rootfs,
            "allowPrivilegeEscalation": False, "privileged": False,
            "capabilities": {"drop": list(spec.cap_drop), "add": list(spec.cap_add)},
            "seccompProfile": _seccomp(spec, seccomp_dir),
        },
        "volumeMounts": mounts,
        "terminationMessagePolicy": "File",
    }
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False, "hostPID": False, "hostIPC": False,
        "shareProcessNamespace": False,
        "hostname": "job",
        "terminationGracePeriodSeconds": 10,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": gid,
            # Secret and ConfigMap files are group-owned by the job's gid: readable by the job, nobody else.
            "fsGroup": gid, "supplementalGroups": [],
            "seccompProfile": _seccomp(spec, seccomp_dir),
        },
        "containers": [container],
        "volumes": volumes,
    }


def job_objects(spec: ContainerSpec, namespace: str, files: Mapping[str, Mapping[str, bytes]],
                secrets: Mapping[str, bytes] | None, seccomp_dir: str = "onexd",
                job_uid: str = UID_PLACEHOLDER, redact: bool = False) -> JobObjects:
    """Every object for one job. `files` maps a read-only mount target to its files (relative path -> bytes),
    `secrets` the granted secret names to their values (None: the job has none)."""
    check_supported(spec)
    labels = _labels(spec)
    managed = {MANAGED_LABEL: "true", JOB_LABEL: labels.get(JOB_LABEL, ""), ZONE_LABEL: spec.network.zone}
    job_name = spec.name
    owned: list[Manifest] = []
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    for index, target in enumerate(sorted(files)):
        name = configmap_name(job_name, index)
        cm, items = _files_configmap(name, namespace, managed, files[target])
        cm["metadata"]["ownerReferences"] = _owner(job_name, job_uid)
        owned.append(cm)
        volumes.append({"name": f"files-{index}", "configMap": {"name": name, "items": items, "defaultMode": 0o444}})
        mounts.append({"name": f"files-{index}", "mountPath": target, "readOnly": True})
    if secrets is not None:
        if sum(len(v) for v in secrets.values()) > MAX_OBJECT_BYTES:
            raise KubernetesUnsupported("the job's secrets do not fit a Secret (1 MiB at most)")
        data = {k: REDACTED if redact else base64.b64encode(v).decode() for k, v in sorted(secrets.items())}
        owned.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": True,
                      "metadata": {"name": secret_name(job_name), "namespace": namespace, "labels": dict(managed),
                                   "ownerReferences": _owner(job_name, job_uid)},
                      "data": data})
        volumes.append({"name": "secrets", "secret": {"secretName": secret_name(job_name), "defaultMode": 0o400,
                                                      "optional": False}})
        mounts.append({"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True})
    annotations = {DIGEST_ANNOTATION: dict(spec.labels).get(POLICY_LABEL, ""),
                   PIDS_ANNOTATION: str(spec.limits.pids_limit), NOFILE_ANNOTATION: str(spec.limits.nofile_limit)}
    pod = pod_spec(spec, volumes, mounts, seccomp_dir)
    job: Manifest = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            # Created suspended: the Secret and ConfigMaps it owns are made next (they need its uid), then
            # onexd resumes it, so the pod never waits on a missing volume.
            "suspend": True,
            "backoffLimit": 0,
            "completions": 1, "parallelism": 1,
            "activeDeadlineSeconds": max(1, spec.limits.timeout_s),
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
        },
    }
    return JobObjects(network_policies=tuple(zone_policies(spec.network.zone, spec.network.mode, namespace)),
                      job=_fresh([job])[0], owned=tuple(_fresh(owned)))


def default_deny(namespace: str) -> Manifest:
    """Every onexd pod is isolated unless a zone policy opens something: removing a zone's policy fails closed."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": DEFAULT_DENY, "namespace": namespace, "labels": {MANAGED_LABEL: "true"}},
            "spec": {"podSelector": {"matchLabels": {MANAGED_LABEL: "true"}},
                     "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}}


def _dns_peer() -> Manifest:
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def zone_policies(zone: str, mode: str, namespace: str) -> list[Manifest]:
    """The default deny plus the zone's own policy: none = nothing; internal = the zone's pods only;
    egress = the zone's pods, its proxy, and DNS (to find the proxy's Service)."""
    same_zone = {"podSelector": {"matchLabels": {MANAGED_LABEL: "true", ZONE_LABEL: zone}}}
    spec: Manifest = {"podSelector": {"matchLabels": {MANAGED_LABEL: "true", ZONE_LABEL: zone}},
                      "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}
    if mode in ("internal", "egress"):
        spec["ingress"] = [{"from": [same_zone]}]
        spec["egress"] = [{"to": [same_zone]}]
    if mode == "egress":
        proxy = {"podSelector": {"matchLabels": {MANAGED_LABEL: "true", ROLE_LABEL: "proxy", ZONE_LABEL: zone}}}
        spec["egress"] += [{"to": [proxy], "ports": [{"protocol": "TCP", "port": PROXY_PORT}]}, _dns_peer()]
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": zone_policy_name(zone), "namespace": namespace,
                           "labels": {MANAGED_LABEL: "true", ZONE_LABEL: zone}},
              "spec": spec}
    return _fresh([default_deny(namespace), policy])


def proxy_objects(spec: ContainerSpec, namespace: str, files: Mapping[str, Mapping[str, bytes]],
                  seccomp_dir: str = "onexd") -> list[Manifest]:
    """The zone's egress proxy: a one-replica Deployment locked down like a job, its Service, its ConfigMaps
    (code and allowlist) and a NetworkPolicy that lets the zone's jobs in and the proxy out."""
    check_supported(spec)
    zone = spec.network.zone
    name = proxy_name(zone)
    labels = {MANAGED_LABEL: "true", ROLE_LABEL: "proxy", ZONE_LABEL: zone}
    objects: list[Manifest] = []
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    for index, target in enumerate(sorted(files)):
        cm_name = f"{name}-files-{index}"
        cm, items = _files_configmap(cm_name, namespace, labels, files[target])
        cm.pop("immutable")  # the allowlist follows reloads
        objects.append(cm)
        volumes.append({"name": f"files-{index}", "configMap": {"name": cm_name, "items": items, "defaultMode": 0o444}})
        mounts.append({"name": f"files-{index}", "mountPath": target, "readOnly": True})
    pod = pod_spec(spec, volumes, mounts, seccomp_dir, stdin=False)
    pod["restartPolicy"] = "Always"
    pod["containers"][0]["ports"] = [{"containerPort": PROXY_PORT, "protocol": "TCP"}]
    objects.append({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": namespace, "labels": _labels(spec) | labels},
                    "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": pod}}})
    objects.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "spec": {"type": "ClusterIP", "selector": labels,
                             "ports": [{"protocol": "TCP", "port": PROXY_PORT, "targetPort": PROXY_PORT}]}})
    zone_pods = {"podSelector": {"matchLabels": {MANAGED_LABEL: "true", ZONE_LABEL: zone}}}
    objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": f"{name}-policy", "namespace": namespace, "labels": labels},
                    "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"],
                             "ingress": [{"from": [zone_pods], "ports": [{"protocol": "TCP", "port": PROXY_PORT}]}],
                             # Out to anywhere: the proxy itself enforces the zone's allowlist.
                             "egress": [{}]}})
    return _fresh(objects)


def read_only_files(spec: ContainerSpec, read_dir: Callable[[str], Mapping[str, bytes]]
                    ) -> dict[str, dict[str, bytes]]:
    """The read-only mounts' contents, read with `read_dir(path) -> {relative path: bytes}` (the secrets
    directory is not among them: it becomes the Secret)."""
    return {m.target: dict(read_dir(m.source)) for m in spec.mounts if m.target != SECRETS_MOUNT}
