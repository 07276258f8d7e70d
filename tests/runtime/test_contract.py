"""The runtime contract: each case runs against the fake and against Docker (the `docker` ids), so the fake is
proven to behave like the engine for everything the daemon relies on."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator

import pytest

from onexd.engine.pool import job_line
from onexd.errors import SlotLost
from onexd.jobs.pool import warm_slots_of
from onexd.runtime.base import Runtime, WarmSlots
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.fake import FakeRuntime
from onexd.runtime.images import build_images
from onexd.spec import LAUNCHER_PATH, MANAGED_LABEL, POOL_LABEL, ContainerSpec, Limits, NetworkPlacement, SeccompSetting

IMAGE = "onexd/runner-busybox"


@pytest.fixture(params=["fake", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    if request.param == "fake":
        yield FakeRuntime()
        return
    docker_runtime: DockerRuntime = request.getfixturevalue("docker_runtime")
    yield docker_runtime


def _name(kind: str) -> str:
    return f"onexd-contract-{kind}-{uuid.uuid4().hex[:10]}"


def spec(command: tuple[str, ...] = ("cat",), output_limit_bytes: int = 1 << 20, name: str | None = None
         ) -> ContainerSpec:
    """A minimal locked-down job: busybox, no network, the engine's seccomp profile."""
    return ContainerSpec(
        name=name or _name("job"), image=IMAGE, command=command, user="1000:1000", env=(), working_dir="/",
        limits=Limits(memory_bytes=64 << 20, memory_swap_bytes=64 << 20, nano_cpus=500_000_000, pids_limit=64,
                      nofile_limit=128, timeout_s=20, output_limit_bytes=output_limit_bytes),
        seccomp=SeccompSetting(name="runtime-default"), network=NetworkPlacement(zone="none", mode="none"),
        labels=((MANAGED_LABEL, "true"),))


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


def test_reap_removes_unused_managed_networks(runtime: Runtime) -> None:
    """A managed network no container uses is reaped (and named); a second reap finds nothing of it."""
    name = _name("net")
    runtime.ensure_network(name, "contract")
    assert name in runtime.reap()
    assert name not in runtime.reap()


def test_service_lifecycle(runtime: Runtime) -> None:
    """A started service runs until removed; removing it twice is not an error; its logs are lines."""
    service = spec(("sh", "-c", "echo started; exec sleep 60"), name=_name("svc"))
    runtime.start_service(service, [])
    try:
        assert runtime.service_running(service.name)
        assert isinstance(runtime.service_logs(service.name, 0.0), list)
    finally:
        runtime.remove_service(service.name)
    assert not runtime.service_running(service.name)
    runtime.remove_service(service.name)


def test_an_unknown_image_is_none(runtime: Runtime) -> None:
    """Asking for an image that does not exist answers None, not an error."""
    assert runtime.image(f"onexd/no-such-image-{uuid.uuid4().hex[:8]}") is None


def test_an_unknown_address_names_no_job(runtime: Runtime) -> None:
    """An address no job had maps to no job."""
    assert runtime.job_for_address("203.0.113.250") is None


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
