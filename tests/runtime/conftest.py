"""Fixtures for the runtime tests: a real engine (a missing one is a failure), a probe policy, leftovers checks;
the Kubernetes fake API server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from onexd.engine.request import JobRequest
from onexd.identity.principal import parse_subject
from onexd.jobs.runner import JobOutcome, JobRunner
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.images import RECIPES
from tests.conftest import BASELINE, doc, write_bundle
from tests.runtime.k8s_fake_server import FakeKubernetes

STRICT = json.loads((BASELINE / "baseline" / "seccomp" / "onexd-strict.json").read_text())
RES = {"memory": "64Mi", "cpus": 0.5, "pids": 64, "nofile": 128, "timeoutSeconds": 20, "outputBytes": "1Mi"}


def _profile(name: str, zone: str = "none", image: str = "onexd/runner-busybox", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": image, "user": "1000:1000", "seccompProfile": "onexd-strict",
                            "tmpfs": [{"path": "/tmp", "size": "8Mi", "mode": "1777"}],
                            "resources": {**RES, **overrides.pop("resources", {})}, "zone": zone, **overrides}
    return doc("SandboxProfile", name, spec)


def _killer_seccomp() -> dict[str, Any]:
    allow = [n for n in STRICT["syscalls"][0]["names"] if n not in ("mkdir", "mkdirat")]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}, STRICT["syscalls"][1],
                         {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}


PROFILES = [
    _profile("probe"),
    _profile("probe-caps", capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"]}),
    _profile("runtime-default", seccompProfile="runtime-default"),
    _profile("hog", resources={"memory": "32Mi", "timeoutSeconds": 10}),
    _profile("short", resources={"timeoutSeconds": 15}),
    _profile("bomb", resources={"pids": 32, "timeoutSeconds": 5}),
    _profile("tiny-output", resources={"outputBytes": "64Ki"}),
    _profile("killer", seccompProfile="killer"),
    _profile("in-a", zone="zone-a"),
    _profile("in-a-too", zone="zone-a"),
    _profile("in-b", zone="zone-b"),
    _profile("py", image="onexd/runner-python", seccompProfile="runtime-default"),
]


def probe_docs() -> list[dict[str, Any]]:
    names = [p["metadata"]["name"] for p in PROFILES]
    return [
        doc("NetworkZone", "zone-a", {"mode": "internal"}),
        doc("NetworkZone", "zone-b", {"mode": "internal"}),
        doc("SeccompProfile", "killer", {"profile": _killer_seccomp()}),
        *PROFILES,
        doc("Capability", "probe-anything", {"adhoc": True, "profiles": names, "zones": ["zone-a", "zone-b"]}),
        doc("Role", "prober", {"permissions": ["nodes:execute"], "capabilities": ["probe-anything"]}),
        doc("RoleBinding", "probers", {"roles": ["prober"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ]


@pytest.fixture(scope="session")
def docker_runtime() -> Iterator[DockerRuntime]:
    runtime = DockerRuntime()
    runtime.ping()  # no engine is a failure in the suite, never a skip
    for recipe in RECIPES:
        assert runtime.image(recipe.name) is not None, f"{recipe.name} missing: `onexd image build` (make test does)"
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def probe_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = tmp_path_factory.mktemp("probe-policy")
    shutil.copytree(BASELINE / "baseline", root / "baseline")
    write_bundle(root, "probe", probe_docs())
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


@pytest.fixture
def runner(docker_runtime: DockerRuntime, tmp_path: Path, staging_dir: Path) -> JobRunner:
    return JobRunner(docker_runtime, tmp_path / "state", staging_dir, environ={}, release_networks=True)


@pytest.fixture(autouse=True)
def _nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every Docker test: no onexd-managed container or network remains."""
    yield
    if request.node.get_closest_marker("docker") is None:
        return
    client = docker.APIClient(version="auto")
    try:
        containers = client.containers(all=True, filters={"label": "onexd.managed=true"})
        networks = client.networks(filters={"label": "onexd.managed=true"})
    finally:
        client.close()
    assert containers == [], f"containers left behind: {[c['Names'] for c in containers]}"
    assert networks == [], f"networks left behind: {[n['Name'] for n in networks]}"


def run_adhoc(runner: JobRunner, snapshot: Snapshot, profile: str, script: str, **kw: Any) -> JobOutcome:
    request = JobRequest(profile=profile, command=("sh", "-c", script))
    return runner.run(snapshot, parse_subject("UnixUser:root"), request, **kw)


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    """A Kubernetes fake API server on loopback (tests/runtime/k8s_fake_server.py), stopped after the test."""
    server = FakeKubernetes()
    server.start()
    yield server
    server.stop()
