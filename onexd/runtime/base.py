"""The Runtime interface, by role: running jobs, zone networks and services, images, reaping leftovers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from onexd.errors import SlotLost as SlotLost
from onexd.runtime.cgroups import Usage
from onexd.spec import ContainerSpec

EXIT_SIGNAL_BASE = 128
OutputSink = Callable[[int, bytes], None]  # (1 stdout | 2 stderr, bytes kept within the output limit)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What happened to one container. `status` is the job status it maps to."""

    status: str  # succeeded failed timed_out oom_killed cancelled error
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool
    duration_ms: int
    started_at: float
    finished_at: float
    reason: str = ""
    # Forensics: what the container used, and the host pids of its processes (to tie kernel records to it).
    usage: Usage | None = None
    processes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ImageInfo:
    name: str
    image_id: str
    labels: dict[str, str] = field(default_factory=dict)


class JobRuntime(Protocol):
    """Running jobs: one ContainerSpec to completion."""

    def ping(self) -> None:
        """Raise RuntimeFailure unless the engine answers and applies seccomp by default."""

    def run(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None = None,
            on_output: OutputSink | None = None) -> RunResult:
        """Create, start, feed, wait for and always remove one container; output is also passed to on_output
        as it arrives."""


class ZoneNetworks(Protocol):
    """Networks and services of zones: internal networks, egress proxies, which job an address was."""

    def ensure_network(self, name: str, zone: str) -> None:
        """Create the internal (no route out) network of a zone, or reuse it."""

    def release_network(self, name: str) -> None:
        """Remove a zone network if no container uses it."""

    def start_service(self, spec: ContainerSpec, networks: list[tuple[str, str]]) -> str:
        """Start a long-running, locked-down container (a zone proxy) joined to (network, alias) pairs."""

    def service_running(self, name: str) -> bool:
        """Whether the named service container is running."""

    def service_logs(self, name: str, since: float) -> list[str]:
        """The service's own output lines since a time."""

    def remove_service(self, name: str) -> None:
        """Stop and remove a service container."""

    def job_for_address(self, address: str) -> str | None:
        """The job a zone-network address belonged to."""


class Images(Protocol):
    """Runner images: look up and import."""

    def image(self, name: str) -> ImageInfo | None:
        """The image called name, or None."""

    def import_image(self, tarball: str, name: str, labels: dict[str, str], changes: list[str]) -> ImageInfo:
        """Import a root filesystem tarball as image name."""


class Reaper(Protocol):
    """Cleaning up after a previous life of the daemon."""

    def reap(self) -> list[str]:
        """Remove every onexd-managed container, and managed networks no container uses; return their names."""


@runtime_checkable
class WarmSlots(Protocol):
    """Warm-pool slots (a backend may not have them: the pool is then off). A slot is a started container whose
    launcher waits for exactly one job; it is removed when that job ends, never reused."""

    def create_slot(self, spec: ContainerSpec) -> str:
        """Create and start a slot from spec (its command is the launcher); return its name."""

    def run_slot(self, name: str, job: ContainerSpec, line: bytes, stdin: bytes,
                 cancel: threading.Event | None = None, on_output: OutputSink | None = None) -> RunResult:
        """Hand the job (the launcher's line, then stdin) to a waiting slot and run it like run(): job's timeout
        and output limit from now; the container is always removed. Raises SlotLost when nothing ran."""

    def remove_slot(self, name: str) -> None:
        """Remove a slot that will not get a job."""

    def settle(self) -> None:
        """Wait for removals under way."""


class Runtime(JobRuntime, ZoneNetworks, Images, Reaper, Protocol):
    """A container engine in every role onexd uses. Implementations: DockerRuntime, FakeRuntime,
    KubernetesRuntime; each role is checked against all three by tests/runtime/test_contract.py."""


def describe_exit(exit_code: int) -> str:
    """Human reason for an exit code: signals by name, SIGSYS as a seccomp kill."""
    if exit_code <= EXIT_SIGNAL_BASE:
        return f"exited with code {exit_code}"
    number = exit_code - EXIT_SIGNAL_BASE
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"exited with code {exit_code}"
    if number == signal.SIGSYS:
        return f"killed by {name}: a system call was refused by the seccomp profile"
    return f"killed by {name}"


def status_for(exit_code: int, oom: bool, timed_out: bool, cancelled: bool) -> str:
    """Map what happened to a job status. Order matters: our own kills explain a 137 before the OOM killer."""
    if timed_out:
        return "timed_out"
    if cancelled:
        return "cancelled"
    if oom and exit_code == EXIT_SIGNAL_BASE + signal.SIGKILL:
        return "oom_killed"
    return "succeeded" if exit_code == 0 else "failed"
