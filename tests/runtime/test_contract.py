"""The runtime contract: the same cases against every backend, so each is proven to behave as the daemon relies on.

`fake` is the in-memory FakeRuntime; `docker` runs the cases on the real engine (marked `docker`); `kubernetes`
runs them through the official client against the fake API server, whose kubelet runs the Pod's argv as a host
process. The fake runs no program (it plays a scripted result), so the cases that need a real program run on
docker and kubernetes only. Cases a Kubernetes backend can only honour on a real cluster (the OOM killer, pids,
seccomp, network isolation are the node's and the CNI's) say so and are skipped for it; docs/kubernetes.md lists
what an operator must check there.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from onexd.engine.pool import job_line
from onexd.engine.translate import proxy_name
from onexd.errors import SlotLost
from onexd.jobs.pool import warm_slots_of
from onexd.runtime.base import Runtime, WarmSlots
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.fake import FakeRuntime
from onexd.runtime.images import build_images
from onexd.spec import (
    JOB_LABEL,
    LAUNCHER_PATH,
    MANAGED_LABEL,
    POOL_LABEL,
    ContainerSpec,
    Limits,
    NetworkPlacement,
    SeccompSetting,
    TmpfsMount,
)
from tests.runtime.k8s_fake_server import FakeKubernetes, Outcome

IMAGE = "onexd/runner-busybox"
NEEDS_CLUSTER = "needs a real cluster: {what} is enforced on the nodes (kubelet, container runtime, kernel, CNI)"
NO_PROGRAM = "FakeRuntime runs no program: it plays a scripted result"
# What the Kubernetes backend does differently by design (docs/kubernetes.md), per contract case.
K8S_BY_DESIGN = {
    "networks": "zones are NetworkPolicies created with each job; release_network is a no-op and reap() removes "
                "the policies, so there is no separate network object to reap",
    "images": "images live in the cluster's registry, which onexd cannot see: image() answers for every name",
}


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("kubernetes", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Runtime]]:
    if request.param == "fake":
        yield "fake", FakeRuntime()
        return
    if request.param == "docker":
        docker_runtime: DockerRuntime = request.getfixturevalue("docker_runtime")
        yield "docker", docker_runtime
        return
    from onexd.runtime.kubernetes import KubernetesRuntime, KubernetesSettings

    fake = FakeKubernetes()
    fake.script = lambda pod: Outcome(program=True)
    fake.start()
    runtime = KubernetesRuntime(KubernetesSettings(namespace="onexd", kubeconfig=fake.write_kubeconfig(tmp_path)))
    yield "kubernetes", runtime
    runtime.close()
    for plural in ("jobs", "pods", "secrets", "configmaps"):
        assert fake.names(plural) == [], f"{plural} left behind"
    fake.stop()


@pytest.fixture
def runtime(backend: tuple[str, Runtime]) -> Runtime:
    """Any backend."""
    return backend[1]


@pytest.fixture
def program_runtime(backend: tuple[str, Runtime]) -> Runtime:
    """A backend that runs the program for real (docker, kubernetes)."""
    if backend[0] == "fake":
        pytest.skip(NO_PROGRAM)
    return backend[1]


def _skip_on_kubernetes(backend: tuple[str, Runtime], why: str) -> Runtime:
    if backend[0] == "kubernetes":
        pytest.skip(K8S_BY_DESIGN[why])
    return backend[1]


def _name(kind: str) -> str:
    return f"onexd-contract-{kind}-{uuid.uuid4().hex[:10]}"


def spec(command: tuple[str, ...] = ("cat",), output_limit_bytes: int = 1 << 20, name: str | None = None
         ) -> ContainerSpec:
    """A minimal locked-down job: busybox, no network, the engine's seccomp profile, labelled with a job id as
    every job the daemon runs is."""
    return ContainerSpec(
        name=name or _name("job"), image=IMAGE, command=command, user="1000:1000", env=(), working_dir="/",
        limits=Limits(memory_bytes=64 << 20, memory_swap_bytes=64 << 20, nano_cpus=500_000_000, pids_limit=64,
                      nofile_limit=128, timeout_s=20, output_limit_bytes=output_limit_bytes),
        seccomp=SeccompSetting(name="runtime-default"), network=NetworkPlacement(zone="none", mode="none"),
        labels=((MANAGED_LABEL, "true"), (JOB_LABEL, uuid.uuid4().hex)))


def _job_spec(command: tuple[str, ...], timeout_s: int = 20, output_bytes: int = 1 << 20) -> ContainerSpec:
    """A job as the daemon translates it: job id in env and labels, a tmpfs /tmp."""
    job = uuid.uuid4().hex
    return ContainerSpec(name=f"onexd-job-{job}", image=IMAGE, command=command, user="1000:1000",
                         env=(("ONEXD_JOB_ID", job),), working_dir="/",
                         limits=Limits(32 << 20, 32 << 20, 5 * 10**8, 32, 64, timeout_s, output_bytes),
                         seccomp=SeccompSetting("runtime-default"), network=NetworkPlacement("none", "none"),
                         labels=(("onexd.job", job), (MANAGED_LABEL, "true"), ("onexd.policy", "0" * 64)),
                         tmpfs=(TmpfsMount("/tmp", 4 << 20, 0o1777),))


# --- every backend -------------------------------------------------------------------------------------------


def test_ping_answers(runtime: Runtime) -> None:
    """A reachable engine answers ping without raising."""
    runtime.ping()


def test_run_feeds_stdin_and_returns_stdout(runtime: Runtime) -> None:
    """A job reading stdin (`cat`) succeeds with exit code 0 and gives back exactly what it was fed."""
    result = runtime.run(spec(), b"hello\nworld\n")
    assert (result.status, result.exit_code, result.stdout, result.truncated) == ("succeeded", 0,
                                                                                   b"hello\nworld\n", False)
    assert result.finished_at >= result.started_at


def test_output_beyond_the_limit_is_cut_and_flagged(runtime: Runtime) -> None:
    """Output over output_limit_bytes is cut to exactly the limit and the result says so."""
    result = runtime.run(spec(output_limit_bytes=16), b"x" * 100)
    assert (len(result.stdout), result.truncated) == (16, True)


def test_output_is_passed_on_as_it_arrives(runtime: Runtime) -> None:
    """on_output receives (stream, bytes) chunks that add up to the kept stdout."""
    chunks: list[tuple[int, bytes]] = []
    result = runtime.run(spec(), b"line one\nline two\n", on_output=lambda s, b: chunks.append((s, b)))
    assert b"".join(b for s, b in chunks if s == 1) == result.stdout == b"line one\nline two\n"


def test_a_job_cancelled_before_it_starts_is_cancelled(runtime: Runtime) -> None:
    """A set cancel event ends the job as `cancelled`, never as succeeded."""
    cancel = threading.Event()
    cancel.set()
    result = runtime.run(spec(("sleep", "10")), b"", cancel=cancel)
    assert result.status == "cancelled"


def test_networks_are_idempotent_and_released(runtime: Runtime) -> None:
    """ensure_network twice is one network; release removes it; releasing again is not an error."""
    name = _name("net")
    runtime.ensure_network(name, "contract")
    runtime.ensure_network(name, "contract")
    runtime.release_network(name)
    runtime.release_network(name)
    assert name not in runtime.reap()


def test_reap_removes_unused_managed_networks(backend: tuple[str, Runtime]) -> None:
    """A managed network no container uses is reaped (and named); a second reap finds nothing of it."""
    runtime = _skip_on_kubernetes(backend, "networks")
    name = _name("net")
    runtime.ensure_network(name, "contract")
    assert name in runtime.reap()
    assert name not in runtime.reap()


def test_service_lifecycle(runtime: Runtime) -> None:
    """A started service runs until removed; removing it twice is not an error; its logs are lines. The service
    is named as the daemon names one (a zone's proxy): the kubernetes backend names its objects by the zone."""
    zone = f"contract-{uuid.uuid4().hex[:8]}"
    service = dataclasses.replace(spec(("sh", "-c", "echo started; exec sleep 60"), name=proxy_name(zone)),
                                  network=NetworkPlacement(zone=zone, mode="none"))
    runtime.start_service(service, [])
    try:
        assert runtime.service_running(service.name)
        assert isinstance(runtime.service_logs(service.name, 0.0), list)
    finally:
        runtime.remove_service(service.name)
    assert not runtime.service_running(service.name)
    runtime.remove_service(service.name)


def test_an_unknown_image_is_none(backend: tuple[str, Runtime]) -> None:
    """Asking for an image that does not exist answers None, not an error."""
    runtime = _skip_on_kubernetes(backend, "images")
    assert runtime.image(f"onexd/no-such-image-{uuid.uuid4().hex[:8]}") is None


def test_an_unknown_address_names_no_job(runtime: Runtime) -> None:
    """An address no job had maps to no job."""
    assert runtime.job_for_address("203.0.113.250") is None


# --- backends that run the program ---------------------------------------------------------------------------


def test_stdin_reaches_the_program(program_runtime: Runtime) -> None:
    """The input arrives on stdin, ends with EOF, and comes back as the program's output."""
    result = program_runtime.run(_job_spec(("cat",)), b'{"x": 1}\n')
    assert (result.status, result.exit_code, result.stdout) == ("succeeded", 0, b'{"x": 1}\n')


def test_a_nonzero_exit_is_failed(program_runtime: Runtime) -> None:
    """`exit 7` is `failed` with exit code 7."""
    result = program_runtime.run(_job_spec(("sh", "-c", "exit 7")), b"")
    assert (result.status, result.exit_code) == ("failed", 7) and "7" in result.reason


def test_output_beyond_the_budget_is_cut(program_runtime: Runtime) -> None:
    """Output past outputBytes is cut at exactly the budget and flagged."""
    script = "i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done"
    result = program_runtime.run(_job_spec(("sh", "-c", script), output_bytes=1000), b"")
    assert result.status == "succeeded" and result.truncated and len(result.stdout) == 1000
    assert result.stdout.startswith(b"0123456789\n")


def test_a_job_past_its_timeout_is_timed_out(program_runtime: Runtime) -> None:
    """A program running past its timeout is ended and reported `timed_out`, within a few seconds."""
    began = time.monotonic()
    result = program_runtime.run(_job_spec(("sleep", "60"), timeout_s=1), b"")
    assert result.status == "timed_out" and time.monotonic() - began < 15


def test_cancel_ends_a_running_job(program_runtime: Runtime) -> None:
    """Setting the cancel event ends the job promptly as `cancelled`."""
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    began = time.monotonic()
    try:
        result = program_runtime.run(_job_spec(("sleep", "60")), b"", cancel)
    finally:
        timer.cancel()
    assert result.status == "cancelled" and time.monotonic() - began < 15


def test_live_output_is_passed_on_as_it_comes(program_runtime: Runtime) -> None:
    """on_output sees the program's output (before the record is final)."""
    seen: list[bytes] = []
    result = program_runtime.run(_job_spec(("sh", "-c", "echo one; echo two")), b"",
                                 on_output=lambda _s, data: seen.append(data))
    assert result.status == "succeeded" and b"".join(seen) == b"one\ntwo\n"


NODE_ENFORCED = {  # what -> where the Docker suite proves it
    "the OOM killer at the memory limit": "test_docker.py::test_memory_hog_is_oom_killed",
    "the pids limit": "test_docker.py::test_fork_bomb_stops_at_the_pids_limit",
    "a seccomp kill": "test_docker.py::test_seccomp_kill_is_reported_and_harmless",
    "network isolation between zones":
        "test_docker.py::test_jobs_in_one_internal_zone_reach_each_other_and_no_one_else",
}


@pytest.mark.parametrize("what", sorted(NODE_ENFORCED))
def test_node_enforced_limits(backend: tuple[str, Runtime], what: str) -> None:
    """Enforcement that belongs to the node, listed for every backend: Docker proves it in test_docker.py;
    on Kubernetes only a real cluster can (the fake server scripts the OOM outcome, test_k8s_runtime.py)."""
    name, _ = backend
    if name == "fake":
        pytest.skip(NO_PROGRAM)
    if name == "kubernetes":
        pytest.skip(NEEDS_CLUSTER.format(what=what))
    pytest.skip(f"proved on the real engine by tests/runtime/{NODE_ENFORCED[what]}")
# --- warm-pool slots (backends with the WarmSlots role) -------------------------------------------------------


def _slots(runtime: Runtime) -> WarmSlots:
    slots = warm_slots_of(runtime)
    if slots is None:
        pytest.skip("this backend has no warm slots: its jobs always run cold")
    if isinstance(runtime, DockerRuntime):
        build_images(runtime, only=[IMAGE])  # the launcher, should another build have dropped it
    return slots


def _slot(name: str) -> ContainerSpec:
    job = spec(name=name)
    return dataclasses.replace(job, command=(LAUNCHER_PATH,), labels=(*job.labels, (POOL_LABEL, "contract")))


def test_a_slot_runs_one_job_on_its_stdin_and_is_gone(runtime: Runtime) -> None:
    """A claimed slot runs the job (`cat`) on the job's stdin, and cannot be claimed a second time."""
    slots = _slots(runtime)
    name = slots.create_slot(_slot(_name("slot")))
    job = dataclasses.replace(spec(), env=(("ONEXD_JOB_ID", "j1"),))
    line = job_line(job)
    assert line is not None
    result = slots.run_slot(name, job, line, b"in\nput\n")
    assert (result.status, result.exit_code, result.stdout) == ("succeeded", 0, b"in\nput\n")
    with pytest.raises(SlotLost):
        slots.run_slot(name, job, line, b"")
    slots.settle()


def test_a_slot_job_keeps_its_output_limit(runtime: Runtime) -> None:
    """A pooled job's output is cut at the job's limit and flagged, as a cold job's is."""
    slots = _slots(runtime)
    name = slots.create_slot(_slot(_name("slot")))
    job = spec(output_limit_bytes=16)
    result = slots.run_slot(name, job, job_line(job) or b"", b"x" * 100)
    assert (len(result.stdout), result.truncated) == (16, True)
    slots.settle()


def test_a_removed_slot_cannot_be_claimed(runtime: Runtime) -> None:
    """A slot removed without a job is gone: claiming it raises SlotLost and nothing runs."""
    slots = _slots(runtime)
    name = slots.create_slot(_slot(_name("slot")))
    slots.remove_slot(name)
    job = spec()
    with pytest.raises(SlotLost):
        slots.run_slot(name, job, job_line(job) or b"", b"")
