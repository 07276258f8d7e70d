"""DockerRuntime: the only module importing the docker SDK. Engine errors become RuntimeFailure here.

`engine_request()` is the pure ContainerSpec -> Engine API translation, golden-tested without a daemon.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from onexd.errors import RuntimeFailure
from onexd.runtime.attach import OutputReader, close_attach
from onexd.runtime.base import (
    EXIT_SIGNAL_BASE,
    ImageInfo,
    OutputSink,
    RunResult,
    SlotLost,
    describe_exit,
    status_for,
)
from onexd.runtime.cgroups import CgroupProbe, Usage
from onexd.runtime.engine_request import engine_request as engine_request
from onexd.spec import JOB_LABEL, MANAGED_LABEL, ContainerSpec

ZONE_LABEL = "onexd.zone"
KILL_GRACE_S = 10
RENAME_AFTER_S = 0.2
REMOVE_AFTER_S = 0.1


def since(usage: Usage | None, cpu_before_ms: int) -> Usage | None:
    """Usage with the CPU spent before a point (a slot's launcher, before the claim) left out."""
    if usage is None or usage.cpu_ms is None or not cpu_before_ms:
        return usage
    return dataclasses.replace(usage, cpu_ms=max(usage.cpu_ms - cpu_before_ms, 0))


@contextlib.contextmanager
def _engine_errors(action: str) -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise RuntimeFailure(f"{action}: not found ({exc.explanation or exc})") from None
    except APIError as exc:
        raise RuntimeFailure(f"{action}: the engine refused ({exc.explanation or exc})") from None
    except (DockerException, requests.RequestException, OSError) as exc:
        raise RuntimeFailure(f"{action}: the Docker engine is unreachable ({exc})") from None


class DockerRuntime:
    """Runs ContainerSpecs on a Docker engine through the SDK's low-level API."""

    def __init__(self, base_url: str = "unix:///var/run/docker.sock", timeout_s: int = 120) -> None:
        with _engine_errors("connecting to Docker"):
            self._client = docker.DockerClient(base_url=base_url, version="auto", timeout=timeout_s)
        self._api = self._client.api
        self._network_lock = threading.Lock()
        self._addresses: dict[str, str] = {}
        self._slot_lock = threading.Lock()
        # Waiting slots: name -> (container id, attach stream, the sampler of its cgroup).
        self._slots: dict[str, tuple[str, Any, CgroupProbe | None]] = {}
        self._removals: list[threading.Thread] = []

    def close(self) -> None:
        self._client.close()

    def ping(self) -> None:
        with _engine_errors("checking the engine"):
            info = self._api.info()
        options = " ".join(info.get("SecurityOptions") or [])
        if "name=seccomp" not in options or "profile=unconfined" in options:
            raise RuntimeFailure("the Docker engine does not apply a seccomp profile by default; onexd refuses "
                                 "to run jobs there (check dockerd's --seccomp-profile)")

    def passes_seccomp_flags(self) -> bool:
        """Whether the engine hands a profile's `flags` (SECCOMP_FILTER_FLAG_LOG) to runc: API 1.42 (Docker
        23) and later. Older engines drop the field silently, so errno refusals never reach the kernel log."""
        with _engine_errors("reading the engine version"):
            version = str(self._api.version().get("ApiVersion", "0.0"))
        major, _, minor = version.partition(".")
        return (int(major or 0), int(minor or 0)) >= (1, 42)

    def image(self, name: str) -> ImageInfo | None:
        try:
            data: dict[str, Any] = cast(Any, self._api).inspect_image(name)
        except NotFound:
            return None
        except (DockerException, requests.RequestException, OSError) as exc:
            raise RuntimeFailure(f"inspecting image {name}: {exc}") from None
        return ImageInfo(name=name, image_id=data["Id"], labels=dict(data.get("Config", {}).get("Labels") or {}))

    def import_image(self, tarball: str, name: str, labels: dict[str, str], changes: list[str]) -> ImageInfo:
        label_changes = [f'LABEL {k}="{v}"' for k, v in sorted(labels.items())]
        with _engine_errors(f"importing image {name}"):
            self._api.import_image_from_file(tarball, repository=name, tag="latest",
                                             changes=[*changes, *label_changes])
        found = self.image(name)
        if found is None:
            raise RuntimeFailure(f"image {name} is missing right after its import")
        return found

    def remove_image(self, name: str) -> None:
        with _engine_errors(f"removing image {name}"), contextlib.suppress(NotFound):
            self._api.remove_image(name, force=True)

    def ensure_network(self, name: str, zone: str) -> None:
        with self._network_lock, _engine_errors(f"creating network {name}"):
            existing = [n for n in self._api.networks(names=[name]) if n["Name"] == name]
            if existing:
                net = existing[0]
                if not net.get("Internal") or (net.get("Labels") or {}).get(MANAGED_LABEL) != "true":
                    raise RuntimeFailure(f"network {name} exists but is not an onexd-managed internal network")
                return
            self._api.create_network(name, driver="bridge", internal=True, check_duplicate=True,
                                     labels={MANAGED_LABEL: "true", ZONE_LABEL: zone})

    def release_network(self, name: str) -> None:
        """Remove a zone network unless a container still uses it (another job of the zone)."""
        with self._network_lock, _engine_errors(f"releasing network {name}"), contextlib.suppress(NotFound):
            if not self._api.inspect_network(name).get("Containers"):
                with contextlib.suppress(APIError):  # a job joined meanwhile: it keeps the network
                    self._api.remove_network(name)

    def reap(self) -> list[str]:
        removed: list[str] = []
        with _engine_errors("reaping leftover containers"):
            for c in self._api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"}):
                with contextlib.suppress(NotFound):
                    self._api.remove_container(c["Id"], force=True)
                removed.append(c["Names"][0].lstrip("/") if c.get("Names") else c["Id"])
            for n in self._api.networks(filters={"label": f"{MANAGED_LABEL}=true"}):
                detail = self._api.inspect_network(n["Id"])
                if not detail.get("Containers"):
                    with contextlib.suppress(NotFound):
                        self._api.remove_network(n["Id"])
                    removed.append(n["Name"])
        return removed

    def _oom_event(self, cid: str, since: float) -> bool:
        """Whether the engine reported an OOM for the container (the State flag alone can be missed)."""
        with _engine_errors("reading engine events"):
            # Sub-second bounds (the API takes them; the stubs say int): `until` must not be in the future.
            events = cast(Any, self._api).events(since=f"{since:.3f}", until=f"{time.time():.3f}", decode=True,
                                                 filters={"container": cid, "event": "oom"})
            return any(True for _ in events)

    # --- long-running services (zone proxies) --------------------------------------------------------

    def start_service(self, spec: ContainerSpec, networks: list[tuple[str, str]]) -> str:
        """Start a detached container with the spec's lockdown, joined to extra (network, alias) pairs. Its own
        output (never a job's) goes to a bounded json-file log, read back with service_logs()."""
        request = engine_request(spec)
        request.update(detach=True, stdin_open=False)
        request["host_config"]["LogConfig"] = {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}
        with _engine_errors(f"starting service {spec.name}"):
            cid = str(self._api.create_container(**request)["Id"])
            try:
                for network, alias in networks:
                    self._api.connect_container_to_network(cid, network, aliases=[alias])
                self._api.start(cid)
            except BaseException:
                self._remove(cid)
                raise
        return cid

    def service_running(self, name: str) -> bool:
        try:
            return bool(self._api.inspect_container(name)["State"]["Running"])
        except NotFound:
            return False
        except (DockerException, requests.RequestException, OSError) as exc:
            raise RuntimeFailure(f"inspecting {name}: {exc}") from None

    def service_logs(self, name: str, since: float) -> list[str]:
        with _engine_errors(f"reading the log of {name}"), contextlib.suppress(NotFound):
            kwargs: dict[str, Any] = {"since": int(since)} if since >= 1 else {}
            raw = self._api.logs(name, stdout=True, stderr=True, timestamps=False, **kwargs)
            return [line for line in raw.decode(errors="replace").splitlines() if line.strip()]
        return []

    def remove_service(self, name: str) -> None:
        self._remove(name)

    def job_for_address(self, address: str) -> str | None:
        """The job whose container had this address on a zone network (kept from when it started)."""
        return self._addresses.get(address)

    def _remember_address(self, cid: str, network: str, job: str | None = None) -> None:
        with contextlib.suppress(DockerException, requests.RequestException, OSError, KeyError):
            info = self._api.inspect_container(cid)
            address = info["NetworkSettings"]["Networks"][network]["IPAddress"]
            if address:
                if len(self._addresses) > 10_000:
                    self._addresses.clear()
                # A slot has no job label (it had no job when created): the claim says which job it is.
                self._addresses[address] = job if job is not None else info["Config"]["Labels"].get(JOB_LABEL, "")

    def run(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None = None,
            on_output: OutputSink | None = None) -> RunResult:
        if self.image(spec.image) is None:
            raise RuntimeFailure(f"image {spec.image} is not present; build it with `onexd image build`")
        if spec.network.network_name is not None:
            self.ensure_network(spec.network.network_name, spec.network.zone)
        cid: str | None = None
        attached: Any = None
        try:
            with _engine_errors(f"creating container {spec.name}"):
                cid = self._api.create_container(**engine_request(spec))["Id"]
                attached = self._api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            raw: socket.socket = getattr(attached, "_sock", attached)
            reader = OutputReader(raw, spec.limits.output_limit_bytes, on_output)
            reader.start()
            started = time.time()
            with _engine_errors(f"starting container {spec.name}"):
                self._api.start(cid)
            if spec.network.mode == "egress" and spec.network.network_name:
                self._remember_address(cid, spec.network.network_name)
            probe = CgroupProbe.attach(self._init_pid(cid), cid)  # before the input: a job reading it is still there
            self._feed(raw, stdin)
            return self._drive(cid, spec, attached, reader, started, cancel, probe)
        finally:
            if attached is not None:
                close_attach(attached)
            # By id when we have it; by name when creation was interrupted before we learned the id.
            self._remove(cid or spec.name)

    def _drive(self, cid: str, spec: ContainerSpec, attached: Any, reader: OutputReader, started: float,
               cancel: threading.Event | None, probe: CgroupProbe, cpu_before_ms: int = 0) -> RunResult:
        """From a started, fed container to its result: the timeout counts from `started`, usage is sampled (and
        its CPU counted from cpu_before_ms: a slot's launcher is not the job's)."""
        timed_out = cancelled = False
        deadline = time.monotonic() + spec.limits.timeout_s - (time.time() - started)
        while reader.is_alive():
            reader.join(0.05)
            probe.sample()
            if not (timed_out or cancelled):
                if cancel is not None and cancel.is_set():
                    cancelled = True
                elif time.monotonic() >= deadline:
                    timed_out = True
                if timed_out or cancelled:
                    self._kill(cid)
        with _engine_errors(f"waiting for container {spec.name}"):
            exit_code = int(self._api.wait(cid, timeout=KILL_GRACE_S + 30)["StatusCode"])
            finished = time.time()
            # Only a SIGKILL can be the OOM killer's: other exits need no second round trip to the engine.
            killed = exit_code == EXIT_SIGNAL_BASE + 9
            state = self._api.inspect_container(cid)["State"] if killed else {}
        close_attach(attached)
        # The kernel's own count in the job's cgroup is evidence too (the engine's flag can be missed).
        oom = bool(state.get("OOMKilled")) or bool(probe.tracker.oom_kills)
        if not oom and killed and not (timed_out or cancelled):
            oom = self._oom_event(cid, started - 1)
        status = status_for(exit_code, oom, timed_out, cancelled)
        usage = probe.usage(reader.seen, round((finished - started) * 1000))
        reason = {"timed_out": f"killed after the {spec.limits.timeout_s}s timeout",
                  "cancelled": "cancelled", "oom_killed": "killed by the OOM killer at the memory limit"
                  }.get(status, describe_exit(exit_code))
        return RunResult(status=status, exit_code=exit_code, stdout=bytes(reader.out[1]),
                         stderr=bytes(reader.out[2]), truncated=reader.truncated,
                         duration_ms=round((finished - started) * 1000), started_at=started,
                         finished_at=finished, reason=reason, usage=since(usage, cpu_before_ms),
                         processes=probe.processes)

    # --- warm-pool slots ---------------------------------------------------------------------------------

    def create_slot(self, spec: ContainerSpec) -> str:
        """Create, attach to and start a slot (its command is the launcher, which waits on stdin)."""
        if spec.network.network_name is not None:
            self.ensure_network(spec.network.network_name, spec.network.zone)
        cid: str | None = None
        attached: Any = None
        try:
            with _engine_errors(f"creating slot {spec.name}"):
                cid = str(self._api.create_container(**engine_request(spec))["Id"])
                attached = self._api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                self._api.start(cid)
        except BaseException:
            if attached is not None:
                close_attach(attached)
            self._remove(cid or spec.name)
            raise
        with self._slot_lock:
            # The job's cgroup is found now, off the claim's path; the claim only reads its counters.
            self._slots[spec.name] = (cid, attached, CgroupProbe.attach(self._init_pid(cid), cid))
        return spec.name

    def run_slot(self, name: str, job: ContainerSpec, line: bytes, stdin: bytes,
                 cancel: threading.Event | None = None, on_output: OutputSink | None = None) -> RunResult:
        """Hand a job to a waiting slot; the timeout and output limit count from here. The container is renamed to
        the job's name (how users and the reaper find a job's container) and always removed afterwards."""
        with self._slot_lock:
            slot = self._slots.pop(name, None)
            if slot is None:
                raise SlotLost(f"slot {name} is not waiting")
            cid, attached, found = slot
            probe = found or CgroupProbe.attach(None, cid)
            done = threading.Event()
            aftercare = threading.Thread(target=self._aftercare, args=(cid, job.name, done), daemon=True)
            self._removals = [t for t in self._removals if t.is_alive()] + [aftercare]
        aftercare.start()
        raw: socket.socket = getattr(attached, "_sock", attached)
        try:
            # Usage from the claim: the launcher's own start-up CPU is read here and left out.
            probe.sample()
            cpu_before = (probe.tracker.cpu_ns or 0) // 1_000_000
            reader = OutputReader(raw, job.limits.output_limit_bytes, on_output)
            reader.start()
            started = time.time()
            try:
                raw.sendall(line)
            except OSError:  # the launcher is gone: nothing ran, the caller may take the cold path
                raise SlotLost(f"slot {name} died while waiting") from None
            if job.network.mode == "egress" and job.network.network_name:
                self._remember_address(cid, job.network.network_name, dict(job.labels).get(JOB_LABEL, ""))
            self._feed(raw, stdin)
            return self._drive(cid, job, attached, reader, started, cancel, probe, cpu_before)
        finally:
            close_attach(attached)
            done.set()

    def _aftercare(self, cid: str, name: str, done: threading.Event) -> None:
        """Beside the job: a job still running after RENAME_AFTER_S gets its container renamed to the job's name
        (a rename costs the engine up to tens of milliseconds, which a short job would wait for at its exit; its
        record names the slot either way); once the job ended, the removal, off the path of its result."""
        if not done.wait(RENAME_AFTER_S):
            with contextlib.suppress(DockerException, requests.RequestException, OSError):
                self._api.rename(cid, name)
            done.wait()
        time.sleep(REMOVE_AFTER_S)  # the exited container waits while the daemon hands out the job's result
        self._remove(cid)

    def remove_slot(self, name: str) -> None:
        with self._slot_lock:
            cid, attached, _ = self._slots.pop(name, (name, None, None))
        if attached is not None:
            close_attach(attached)
        self._remove(cid)

    def settle(self) -> None:
        """Wait for removals still under way (before the daemon stops)."""
        with self._slot_lock:
            pending = list(self._removals)
        for thread in pending:
            thread.join(KILL_GRACE_S + 30)

    def _init_pid(self, cid: str) -> int | None:
        """The host pid of the container's first process (0 once it has exited), for usage and forensics."""
        with contextlib.suppress(DockerException, requests.RequestException, OSError, KeyError, TypeError):
            return int(self._api.inspect_container(cid)["State"]["Pid"]) or None
        return None

    @staticmethod
    def _feed(raw: socket.socket, stdin: bytes) -> None:
        # A job that exits without reading its input closes the pipe: that is its business, not an error.
        with contextlib.suppress(OSError):
            raw.sendall(stdin)
            raw.shutdown(socket.SHUT_WR)

    def _kill(self, cid: str) -> None:
        with contextlib.suppress(NotFound, APIError), _engine_errors("killing a job container"):
            self._api.kill(cid)

    def _remove(self, cid: str) -> None:
        # Retried: removal must happen even when the engine is briefly busy; reap() catches what is left.
        for attempt in range(3):
            try:
                self._api.remove_container(cid, force=True)
                return
            except NotFound:
                return
            except (DockerException, requests.RequestException, OSError):
                time.sleep(0.2 * (attempt + 1))
