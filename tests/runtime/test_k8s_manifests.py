"""ContainerSpec -> Kubernetes manifests: golden files, the official schemas in strict mode, Pod Security
"restricted", and the invariants of the Docker envelope for any valid policy (hypothesis).

Golden files are tests/golden/k8s-<case>.yaml; regenerate with UPDATE_GOLDEN=1 and review the diff as a change to
security policy. Schemas: those kubernetes-validate ships (offline) for the release named in SCHEMA_VERSION.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from onexd.engine.decide import decide
from onexd.engine.request import JobRequest
from onexd.engine.translate import translate
from onexd.errors import KubernetesUnsupported
from onexd.identity.principal import parse_subject
from onexd.runtime.k8s_manifests import RESTRICTED_CAP_ADDS, job_objects, zone_policies
from onexd.runtime.k8s_render import render_job, restricted_violations
from onexd.spec import SECRETS_MOUNT
from tests.conftest import EXAMPLES, doc, write_bundle
from tests.engine.test_properties import allowed_job, policies
from tests.engine.test_translate import CASES, GOLDEN, JOB_ID, _snapshot, _strict_policy

SCHEMA_VERSION = "1.37.0"


def validate_strict(obj: dict[str, Any]) -> None:
    """Raise unless obj validates against the release's official schema, unknown fields refused."""
    kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)


def _render(name: str, tmp_path: Path) -> list[dict[str, Any]]:
    snapshot = _snapshot(_strict_policy(tmp_path) if name == "adhoc-strict" else EXAMPLES)
    request = JobRequest.model_validate(CASES[name])
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    assert decision.allowed, decision.reasons
    return render_job(snapshot, decision, request, JOB_ID, "onexd")


def _pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Job", "Deployment")]


def _without_digest(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policy digest depends on bundle bytes (comments included); the golden pins the rest."""
    for obj in objects:
        for where in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
            for key in ("labels", "annotations"):
                for k in list(where.get(key) or {}):
                    if k in ("onexd.policy", "onexd.policy-digest"):
                        where[key][k] = "<digest>"
    return objects


@pytest.mark.parametrize("name", sorted(CASES))
def test_manifests_match_golden(name: str, tmp_path: Path) -> None:
    """Every object of each case is exactly the reviewed golden YAML."""
    actual = yaml.safe_dump_all(_without_digest(_render(name, tmp_path)), sort_keys=True)
    path = GOLDEN / f"k8s-{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_objects_pass_strict_schema_validation_and_restricted(name: str, tmp_path: Path) -> None:
    """Each rendered object validates against the official schemas (strict); each Pod passes "restricted"."""
    objects = _render(name, tmp_path)
    for obj in objects:
        validate_strict(obj)
    pods = _pods(objects)
    assert pods and all(restricted_violations(p) == [] for p in pods)


def test_strict_validation_catches_an_unknown_field(tmp_path: Path) -> None:
    """The schema check can fail: a misspelled securityContext field is refused."""
    job = next(o for o in _render("hello", tmp_path) if o["kind"] == "Job")
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(job)


def test_the_custom_seccomp_profile_is_localhost_under_a_content_named_file(tmp_path: Path) -> None:
    """A policy seccomp profile becomes Localhost onexd/<name>-<digest>.json; runtime-default is RuntimeDefault."""
    strict = _pods(_render("adhoc-strict", tmp_path))[0]["containers"][0]["securityContext"]["seccompProfile"]
    assert strict["type"] == "Localhost" and strict["localhostProfile"].startswith("onexd/onexd-strict-")
    hello = _pods(_render("hello", tmp_path))[0]["containers"][0]["securityContext"]["seccompProfile"]
    assert hello == {"type": "RuntimeDefault"}


def test_secret_values_are_redacted_in_a_render(tmp_path: Path) -> None:
    """A render names the job's secrets but never carries a value."""
    secret = next(o for o in _render("wordcount", tmp_path) if o["kind"] == "Secret")
    assert list(secret["data"]) == ["api-token"]
    assert secret["data"]["api-token"] == "PHJlZGFjdGVkPg=="  # base64 of "<redacted>"


def _egress_snapshot(tmp_path: Path, host: str = "example.org") -> Any:
    root = tmp_path / "egress-policy"
    write_bundle(root, "egress", [
        doc("NetworkZone", "web", {"mode": "egress", "egress": [{"host": host, "ports": [443]}]}),
        doc("SandboxProfile", "fetch", {"image": "onexd/runner-python", "user": "1000:1000", "zone": "web",
                                        "resources": {"memory": "64Mi", "cpus": 0.5, "pids": 64, "nofile": 128,
                                                      "timeoutSeconds": 20, "outputBytes": "1Mi"}}),
        doc("Capability", "fetchers", {"adhoc": True, "profiles": ["fetch"], "zones": ["web"]}),
        doc("Role", "r", {"permissions": ["nodes:execute"], "capabilities": ["fetchers"]}),
        doc("RoleBinding", "b", {"roles": ["r"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])
    return _snapshot(root)


def test_an_egress_zone_renders_its_proxy_and_policies(tmp_path: Path) -> None:
    """An egress job: the zone policy allows its zone, the proxy port and DNS only; the proxy is a locked-down
    Deployment + Service; the job's proxy variables point at that Service; everything validates."""
    snapshot = _egress_snapshot(tmp_path)
    request = JobRequest(profile="fetch", command=("python3", "-c", "pass"))
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    objects = render_job(snapshot, decision, request, JOB_ID, "onexd")
    kinds = [o["kind"] for o in objects]
    assert kinds.count("NetworkPolicy") == 3 and "Deployment" in kinds and "Service" in kinds
    for obj in objects:
        validate_strict(obj)
    assert all(restricted_violations(p) == [] for p in _pods(objects))
    zone = next(o for o in objects if o["metadata"]["name"] == "onexd-zone-web")
    egress = zone["spec"]["egress"]
    assert egress[1]["ports"] == [{"protocol": "TCP", "port": 3128}]
    assert egress[2]["ports"][0]["port"] == 53 and len(egress) == 3
    env = {e["name"]: e["value"] for e in _pods(objects)[0]["containers"][0]["env"]}
    assert env["HTTPS_PROXY"] == "http://onexd-proxy-web:3128"
    config = next(o for o in objects if o["kind"] == "ConfigMap" and "f0" in o["data"]
                  and "example.org" in o["data"]["f0"])
    assert config["metadata"]["name"].startswith("onexd-proxy-web-files-")


def test_zone_none_denies_everything() -> None:
    """Zone none: the zone policy has no ingress and no egress rule; the default deny covers every onexd pod."""
    deny, policy = zone_policies("none", "none", "onexd")
    for obj in (deny, policy):
        assert obj["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert obj["spec"]["ingress"] == [] and obj["spec"]["egress"] == []
    assert deny["spec"]["podSelector"] == {"matchLabels": {"onexd.managed": "true"}}


def test_restricted_check_flags_each_violation(tmp_path: Path) -> None:
    """The restricted checker fails on each rule it checks (so passing it means something)."""
    pod = _pods(_render("hello", tmp_path))[0]
    breaks = [
        lambda p: p.update(hostNetwork=True),
        lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        lambda p: (p["containers"][0]["securityContext"].update(runAsNonRoot=False),
                   p["securityContext"].update(runAsNonRoot=False)),
        lambda p: p["containers"][0]["securityContext"].update(runAsUser=0),
        lambda p: (p["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"})),
        lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
    ]
    for breaker in breaks:
        broken = copy.deepcopy(pod)
        breaker(broken)
        assert restricted_violations(broken), breaker


def test_capability_adds_beyond_net_bind_service_are_refused(tmp_path: Path) -> None:
    """Capabilities "restricted" forbids are refused with a clear error, never dropped silently."""
    snapshot = _snapshot(EXAMPLES)
    request = JobRequest.model_validate(CASES["adhoc-busybox"])
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    spec = translate(snapshot, decision, request, JOB_ID)
    with pytest.raises(KubernetesUnsupported, match=r"CHOWN.*NET_BIND_SERVICE"):
        job_objects(dataclasses.replace(spec, cap_add=("CHOWN",)), "onexd", {}, None)
    allowed = job_objects(dataclasses.replace(spec, cap_add=("NET_BIND_SERVICE",)), "onexd", {}, None)
    assert allowed.job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] == [
        "NET_BIND_SERVICE"]


def test_node_code_over_a_configmap_is_refused(tmp_path: Path) -> None:
    """Node code larger than a ConfigMap holds is refused, not cut."""
    snapshot = _snapshot(EXAMPLES)
    request = JobRequest.model_validate(CASES["adhoc-busybox"])
    spec = translate(snapshot, decide(snapshot, parse_subject("UnixUser:root"), request), request, JOB_ID)
    with pytest.raises(KubernetesUnsupported, match="ConfigMap"):
        job_objects(spec, "onexd", {"/app/node": {"big.bin": b"\0" * (1024 * 1024 + 1)}}, None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_manifests_keep_the_envelope_for_any_valid_policy(case: tuple[list[dict[str, Any]], dict[str, Any]]
                                                         ) -> None:
    """For any valid policy and allowed request: refused iff a capability beyond NET_BIND_SERVICE is added;
    otherwise every object validates strictly, the Pod passes "restricted" and keeps every invariant of the
    Docker envelope Kubernetes can express."""
    _, _, spec = allowed_job(*case, job_id=JOB_ID)
    secrets = {"s": b"zz-secret-zz"} if any(m.target == SECRETS_MOUNT for m in spec.mounts) else None
    if set(spec.cap_add) - RESTRICTED_CAP_ADDS:
        with pytest.raises(KubernetesUnsupported):
            job_objects(spec, "ns", {}, secrets)
        return
    objects = job_objects(spec, "ns", {}, secrets)
    for obj in objects.all():
        validate_strict(obj)
    job = objects.job
    pod = job["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    c = pod["containers"][0]
    sc = c["securityContext"]
    uid, gid = (int(x) for x in spec.user.split(":"))
    assert (sc["runAsUser"], sc["runAsGroup"]) == (uid, gid) and uid > 0 and gid > 0
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["privileged"] is False
    assert sc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    assert (sc["seccompProfile"]["type"] == "Localhost") == (spec.seccomp.profile_json is not None)
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert not (pod["hostNetwork"] or pod["hostPID"] or pod["hostIPC"])
    assert all(set(v) - {"name"} <= {"configMap", "secret", "emptyDir"} for v in pod["volumes"])
    assert all(v["emptyDir"]["medium"] == "Memory" for v in pod["volumes"] if "emptyDir" in v)
    assert all(m.get("readOnly") for m in c["volumeMounts"] if not m["name"].startswith("tmpfs-"))
    limits = c["resources"]["limits"]
    assert int(limits["memory"]) == spec.limits.memory_bytes and c["resources"]["requests"] == limits
    assert int(limits["cpu"].removesuffix("m")) >= 1 and int(limits["ephemeral-storage"]) > 0
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations["onexd.pids-limit"] == str(spec.limits.pids_limit)
    assert annotations["onexd.nofile-limit"] == str(spec.limits.nofile_limit)
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == spec.limits.timeout_s
    assert c["command"] == list(spec.command) and c["args"] == []
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["onexd.managed"] == "true" and labels["onexd.job"] == JOB_ID
    # The zone policy selects this pod; secrets are only ever a Secret volume.
    policy = objects.network_policies[1]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert "zz-secret-zz" not in str(job) and "enotc2VjcmV0LXp6" not in str(job)
    assert all(e["name"] != "s" for e in c["env"])
    if secrets is not None:
        secret_volume = next(v for v in pod["volumes"] if "secret" in v)
        assert secret_volume["secret"]["defaultMode"] == 0o400 and pod["securityContext"]["fsGroup"] == gid


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _label_problems(obj: dict[str, Any]) -> list[str]:
    """Kubernetes' own rules for names and label values, which the OpenAPI schemas do not carry."""
    problems = []
    name = obj["metadata"]["name"]
    if not (DNS_LABEL.match(name) and len(name) <= (52 if obj["kind"] == "Job" else 63)):
        problems.append(f"name {name}")  # a Job's name goes into its pods' job-name label and name
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
        for key, value in (meta.get("labels") or {}).items():
            if len(value) > 63 or not LABEL_VALUE.match(value):
                problems.append(f"label {key}={value}")
    return problems


@pytest.mark.parametrize("name", sorted(CASES))
def test_names_and_label_values_are_valid(name: str, tmp_path: Path) -> None:
    """Every name is a DNS label of legal length and every label value holds at most 63 legal characters."""
    for obj in _render(name, tmp_path):
        assert _label_problems(obj) == [], obj["kind"]


def test_egress_objects_have_valid_names_and_labels(tmp_path: Path) -> None:
    """The proxy's objects too (its Deployment carries the policy label, cut to a legal length)."""
    snapshot = _egress_snapshot(tmp_path)
    request = JobRequest(profile="fetch", command=("true",))
    objects = render_job(snapshot, decide(snapshot, parse_subject("UnixUser:root"), request), request, JOB_ID, "ns")
    assert [p for o in objects for p in _label_problems(o)] == []
