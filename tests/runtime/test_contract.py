"""The runtime contract: the same cases against every backend that runs programs.

`docker` runs them on the real engine (marked `docker`); `kubernetes` runs them through the official client
against the fake API server, whose kubelet runs the Pod's argv as a host process. Cases a Kubernetes backend can
only honour on a real cluster (the OOM killer, pids, seccomp, network isolation are the node's and the CNI's)
say so and are skipped for it; docs/kubernetes.md lists what an operator must check there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from onexd.runtime.base import Runtime
from onexd.spec import ContainerSpec, Limits, NetworkPlacement, SeccompSetting, TmpfsMount
from tests.runtime.k8s_fake_server import FakeKubernetes, Outcome

NEEDS_CLUSTER = "needs a real cluster: {what} is enforced on the nodes (kubelet, container runtime, kernel, CNI)"


@pytest.fixture(params=["kubernetes", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Runtime]]:
    if request.param == "docker":
        from onexd.runtime.docker import DockerRuntime

        docker_runtime = DockerRuntime()
        docker_runtime.ping()
        yield "docker", docker_runtime
        docker_runtime.close()
        return
    from onexd.runtime.kubernetes import KubernetesRuntime, KubernetesSettings

    fake = FakeKubernetes()
    fake.script = lambda pod: Outcome(program=True)
    fake.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(fake.kubeconfig())
    runtime = KubernetesRuntime(KubernetesSettings(namespace="onexd", kubeconfig=str(kubeconfig)))
    yield "kubernetes", runtime
    runtime.close()
    for plural in ("jobs", "pods", "secrets", "configmaps"):
        assert fake.names(plural) == [], f"{plural} left behind"
    fake.stop()


def _spec(command: tuple[str, ...], timeout_s: int = 20, output_bytes: int = 1 << 20) -> ContainerSpec:
    job = uuid.uuid4().hex
    return ContainerSpec(name=f"onexd-job-{job}", image="onexd/runner-busybox", command=command, user="1000:1000",
                         env=(("ONEXD_JOB_ID", job),), working_dir="/",
                         limits=Limits(32 << 20, 32 << 20, 5 * 10**8, 32, 64, timeout_s, output_bytes),
                         seccomp=SeccompSetting("runtime-default"), network=NetworkPlacement("none", "none"),
                         labels=(("onexd.job", job), ("onexd.managed", "true"), ("onexd.policy", "0" * 64)),
                         tmpfs=(TmpfsMount("/tmp", 4 << 20, 0o1777),))


def test_stdin_reaches_the_program(backend: tuple[str, Runtime]) -> None:
    """The input arrives on stdin, ends with EOF, and comes back as the program's output."""
    _, runtime = backend
    result = runtime.run(_spec(("cat",)), b'{"x": 1}\n')
    assert (result.status, result.exit_code, result.stdout) == ("succeeded", 0, b'{"x": 1}\n')


def test_a_nonzero_exit_is_failed(backend: tuple[str, Runtime]) -> None:
    """`exit 7` is `failed` with exit code 7."""
    _, runtime = backend
    result = runtime.run(_spec(("sh", "-c", "exit 7")), b"")
    assert (result.status, result.exit_code) == ("failed", 7) and "7" in result.reason


def test_output_beyond_the_budget_is_cut(backend: tuple[str, Runtime]) -> None:
    """Output past outputBytes is cut at exactly the budget and flagged."""
    _, runtime = backend
    script = "i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done"
    result = runtime.run(_spec(("sh", "-c", script), output_bytes=1000), b"")
    assert result.status == "succeeded" and result.truncated and len(result.stdout) == 1000
    assert result.stdout.startswith(b"0123456789\n")


def test_a_job_past_its_timeout_is_timed_out(backend: tuple[str, Runtime]) -> None:
    """A program running past its timeout is ended and reported `timed_out`, within a few seconds."""
    _, runtime = backend
    began = time.monotonic()
    result = runtime.run(_spec(("sleep", "60"), timeout_s=1), b"")
    assert result.status == "timed_out" and time.monotonic() - began < 15


def test_cancel_ends_a_running_job(backend: tuple[str, Runtime]) -> None:
    """Setting the cancel event ends the job promptly as `cancelled`."""
    _, runtime = backend
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    began = time.monotonic()
    try:
        result = runtime.run(_spec(("sleep", "60")), b"", cancel)
    finally:
        timer.cancel()
    assert result.status == "cancelled" and time.monotonic() - began < 15


def test_live_output_is_passed_on_as_it_comes(backend: tuple[str, Runtime]) -> None:
    """on_output sees the program's output (before the record is final)."""
    _, runtime = backend
    seen: list[bytes] = []
    result = runtime.run(_spec(("sh", "-c", "echo one; echo two")), b"", on_output=lambda _s, data: seen.append(data))
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
    if name == "kubernetes":
        pytest.skip(NEEDS_CLUSTER.format(what=what))
    pytest.skip(f"proved on the real engine by tests/runtime/{NODE_ENFORCED[what]}")
