"""Invariants of the security model for any valid policy and request (hypothesis).

Whatever the policy says, a job container drops every capability but allowed adds, is never privileged,
runs non-root on a read-only root with no-new-privileges and seccomp, has every limit, and has network
only from a zone its capability granted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from onexd.engine.decide import Decision, decide
from onexd.engine.request import JobRequest
from onexd.engine.translate import HostPaths, translate
from onexd.identity.principal import parse_subject
from onexd.policy.pipeline import load_directory
from onexd.policy.security import SAFE_CAPABILITIES
from onexd.policy.snapshot import Snapshot
from onexd.spec import NODE_MOUNT, SECRETS_MOUNT, ContainerSpec
from tests.conftest import doc, write_bundle

ids = st.integers(min_value=1, max_value=2**31 - 1)
memory_sizes = st.integers(min_value=6 * 1024**2, max_value=2**33)
output_sizes = st.integers(min_value=1024, max_value=64 * 1024**2)
tmpfs_sizes = st.integers(min_value=4096, max_value=2**33)


@st.composite
def profiles(draw: st.DrawFn, name: str, zones: list[str], seccomps: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": draw(st.sampled_from(["onexd/runner-busybox", "onexd/runner-python"])),
        "user": f"{draw(ids)}:{draw(ids)}",
        "resources": {"memory": draw(memory_sizes), "cpus": draw(st.floats(0.01, 8)),
                      "pids": draw(st.integers(1, 65536)), "nofile": draw(st.integers(8, 1048576)),
                      "timeoutSeconds": draw(st.integers(1, 86400)), "outputBytes": draw(output_sizes)},
        "capabilities": {"add": draw(st.lists(st.sampled_from(sorted(SAFE_CAPABILITIES)), max_size=3))},
        "zone": draw(st.sampled_from(zones)),
        "seccompProfile": draw(st.sampled_from(seccomps)),
    }
    if draw(st.booleans()):
        spec["tmpfs"] = [{"path": "/tmp", "size": draw(tmpfs_sizes), "mode": "1777"}]
    return doc("SandboxProfile", name, spec)


@st.composite
def policies(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    zone_modes = draw(st.lists(st.sampled_from(["none", "internal"]), max_size=3))
    zone_docs = [doc("NetworkZone", f"z{i}", {"mode": m}) for i, m in enumerate(zone_modes)]
    zones = ["none", *(d["metadata"]["name"] for d in zone_docs)]
    seccomp_docs = [doc("SeccompProfile", "filter", {"profile": {
        "defaultAction": draw(st.sampled_from(["SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"])),
        "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}})]
    profile_docs = [draw(profiles(f"p{i}", zones, ["runtime-default", "filter"]))
                    for i in range(draw(st.integers(1, 3)))]
    pnames = [p["metadata"]["name"] for p in profile_docs]
    node_docs = []
    for i in range(draw(st.integers(1, 3))):
        profile = draw(st.sampled_from(profile_docs))
        spec: dict[str, Any] = {"version": "1.0.0", "profile": profile["metadata"]["name"], "command": ["true"]}
        if draw(st.booleans()):
            spec["zone"] = draw(st.sampled_from(zones))
        if draw(st.booleans()):
            spec["timeoutSeconds"] = draw(st.integers(1, profile["spec"]["resources"]["timeoutSeconds"]))
        node_docs.append(doc("Node", f"n{i}", spec))
    nnames = [n["metadata"]["name"] for n in node_docs]
    cap_docs = [doc("Capability", f"c{i}", {
        "nodes": draw(st.lists(st.sampled_from([*nnames, "n*", "*"]), max_size=2, unique=True)),
        "profiles": draw(st.lists(st.sampled_from(pnames), max_size=3, unique=True)),
        "zones": draw(st.lists(st.sampled_from(zones), max_size=3, unique=True)),
        "adhoc": draw(st.booleans())}) for i in range(draw(st.integers(1, 3)))]
    role = doc("Role", "r", {"permissions": ["nodes:execute"],
                             "capabilities": [c["metadata"]["name"] for c in cap_docs]})
    binding = doc("RoleBinding", "b", {"roles": ["r"], "subjects": [{"kind": "UnixUser", "name": "root"}]})
    if draw(st.booleans()):
        request: dict[str, Any] = {"node": draw(st.sampled_from(nnames)), "input": None}
    else:
        request = {"profile": draw(st.sampled_from(pnames)), "command": ["sh", "-c", "true"]}
    return [*zone_docs, *seccomp_docs, *profile_docs, *node_docs, *cap_docs, role, binding], request


def allowed_job(docs: list[dict[str, Any]], body: dict[str, Any], job_id: str = "job",
                paths: HostPaths = HostPaths(node_source="/x", secrets_dir="/y")  # noqa: B008 - frozen
                ) -> tuple[Snapshot, Decision, ContainerSpec]:
    """A drawn policy loaded, the drawn request decided for UnixUser:root and translated. Hypothesis discards a
    draft the loader refuses and a request the policy denies (they are other tests' subject)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_bundle(Path(tmp), "gen", docs)
        ev = load_directory(Path(tmp))
    assume(ev.ok and ev.snapshot is not None)
    snapshot = ev.snapshot
    assert snapshot is not None
    request = JobRequest.model_validate(body)
    decision = decide(snapshot, parse_subject("UnixUser:root"), request)
    assume(decision.allowed)
    return snapshot, decision, translate(snapshot, decision, request, job_id, paths)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(policies())
def test_container_spec_invariants_hold_for_any_valid_policy(case: tuple[list[dict[str, Any]], dict[str, Any]]
                                                            ) -> None:
    """For any valid snapshot and allowed request, the spec keeps every sandbox invariant."""
    snapshot, decision, spec = allowed_job(*case)
    profile = snapshot.profiles[decision.sandbox.profile]  # type: ignore[union-attr]
    assert spec.cap_drop == ("ALL",)
    assert set(spec.cap_add) <= SAFE_CAPABILITIES & set(profile.capabilities.add)
    assert not spec.privileged and spec.read_only_rootfs and spec.no_new_privileges
    uid, gid = (int(x) for x in spec.user.split(":"))
    assert uid > 0 and gid > 0
    limits = spec.limits
    assert min(limits.memory_bytes, limits.nano_cpus, limits.pids_limit, limits.nofile_limit,
               limits.timeout_s, limits.output_limit_bytes) > 0
    assert limits.memory_swap_bytes == limits.memory_bytes
    assert spec.seccomp.name != "unconfined"
    assert spec.seccomp.profile_json is None or '"SCMP_ACT_ALLOW"' not in spec.seccomp.profile_json.split(
        '"defaultAction":')[1][:20]
    cap = snapshot.capabilities[decision.capability]  # type: ignore[index]
    if spec.network.mode == "none":
        assert spec.network.network_name is None
    else:
        assert spec.network.zone in cap.zones
        assert spec.network.network_name == f"onexd-zone-{spec.network.zone}"
    assert all(m.read_only for m in spec.mounts)
    assert {m.target for m in spec.mounts} <= {NODE_MOUNT, SECRETS_MOUNT}
    assert dict(spec.labels)["onexd.managed"] == "true"
