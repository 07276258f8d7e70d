"""FakeRuntime: an in-memory Runtime for unit tests. It records what it was asked and plays a scripted result."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from onexd.errors import SlotLost
from onexd.runtime.base import ImageInfo, OutputSink, RunResult
from onexd.spec import ContainerSpec

Behaviour = Callable[[ContainerSpec, bytes], RunResult]


def echo(spec: ContainerSpec, stdin: bytes) -> RunResult:
    """The default behaviour: succeed and echo stdin to stdout, capped like the engine caps it."""
    now = time.time()
    limit = spec.limits.output_limit_bytes
    return RunResult(status="succeeded", exit_code=0, stdout=stdin[:limit], stderr=b"",
                     truncated=len(stdin) > limit, duration_ms=0, started_at=now, finished_at=now,
                     reason="exited with code 0")


@dataclass
class FakeRuntime:
    behaviour: Behaviour = echo
    runs: list[tuple[ContainerSpec, bytes]] = field(default_factory=list)
    networks: set[str] = field(default_factory=set)
    images: dict[str, ImageInfo] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    seen_files: list[dict[str, bytes]] = field(default_factory=list)
    services: dict[str, tuple[ContainerSpec, list[tuple[str, str]]]] = field(default_factory=dict)
    service_output: dict[str, list[str]] = field(default_factory=dict)
    slots: dict[str, ContainerSpec] = field(default_factory=dict)  # waiting slots by name
    slot_runs: list[tuple[str, ContainerSpec, bytes]] = field(default_factory=list)  # (slot, job, line + stdin)

    def ping(self) -> None:
        return None

    def run(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None = None,
            on_output: OutputSink | None = None) -> RunResult:
        self.runs.append((spec, stdin))
        if cancel is not None and cancel.is_set():  # like the engine: the job is killed, never succeeds
            now = time.time()
            return RunResult(status="cancelled", exit_code=137, stdout=b"", stderr=b"", truncated=False,
                             duration_ms=0, started_at=now, finished_at=now, reason="cancelled")
        self.live.add(spec.name)
        try:
            # What a job would see in its mounts, captured while they exist (the runner removes them after).
            files = {}
            for mount in spec.mounts:
                for path in Path(mount.source).rglob("*"):
                    if path.is_file():
                        files[f"{mount.target}/{path.relative_to(mount.source)}"] = path.read_bytes()
            self.seen_files.append(files)
            result = self.behaviour(spec, stdin)
            if on_output is not None:
                for stream, data in ((1, result.stdout), (2, result.stderr)):
                    if data:
                        on_output(stream, data)
            return result
        finally:
            self.live.discard(spec.name)

    # --- warm-pool slots: a slot is a spec waiting; claiming plays the job like run() and removes the slot ---

    def create_slot(self, spec: ContainerSpec) -> str:
        if spec.network.network_name is not None:
            self.ensure_network(spec.network.network_name, spec.network.zone)
        self.slots[spec.name] = spec
        return spec.name

    def run_slot(self, name: str, job: ContainerSpec, line: bytes, stdin: bytes,
                 cancel: threading.Event | None = None, on_output: OutputSink | None = None) -> RunResult:
        slot = self.slots.pop(name, None)
        if slot is None:
            raise SlotLost(f"slot {name} is not waiting")
        self.slot_runs.append((name, job, line + stdin))
        # The job sees the slot's mounts (its secrets directory), not paths it would have had cold.
        return self.run(dataclasses.replace(job, mounts=slot.mounts), stdin, cancel, on_output)

    def remove_slot(self, name: str) -> None:
        self.slots.pop(name, None)

    def settle(self) -> None:
        return None

    def ensure_network(self, name: str, zone: str) -> None:
        self.networks.add(name)

    def release_network(self, name: str) -> None:
        self.networks.discard(name)

    def start_service(self, spec: ContainerSpec, networks: list[tuple[str, str]]) -> str:
        self.services[spec.name] = (spec, networks)
        return spec.name

    def service_running(self, name: str) -> bool:
        return name in self.services

    def service_logs(self, name: str, since: float) -> list[str]:
        return list(self.service_output.get(name, []))

    def remove_service(self, name: str) -> None:
        self.services.pop(name, None)

    def job_for_address(self, address: str) -> str | None:
        return None

    def reap(self) -> list[str]:
        removed = sorted(self.live | self.networks | set(self.slots))
        self.live.clear()
        self.slots.clear()
        self.networks.clear()
        return removed

    def image(self, name: str) -> ImageInfo | None:
        return self.images.get(name)

    def import_image(self, tarball: str, name: str, labels: dict[str, str], changes: list[str]) -> ImageInfo:
        info = ImageInfo(name=name, image_id=f"sha256:fake-{len(self.images)}", labels=dict(labels))
        self.images[name] = info
        return info
