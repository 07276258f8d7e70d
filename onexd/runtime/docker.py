"""DockerRuntime: the only module importing the docker SDK. Engine errors become RuntimeFailure here.

`engine_request()` is the pure ContainerSpec -> Engine API translation, golden-tested without a daemon.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from onexd.errors import RuntimeFailure
from onexd.runtime.base import EXIT_SIGNAL_BASE, ImageInfo, OutputSink, RunResult, describe_exit, status_for
from onexd.runtime.cgroups import CgroupProbe
from onexd.spec import MANAGED_LABEL, ContainerSpec

ZONE_LABEL = "onexd.zone"
# Jobs yield CPU to the daemon and everything else (CIS 5.12 wants a non-default share).
CPU_SHARES = 512
# The OOM killer should pick a job before onexd or dockerd.
OOM_SCORE_ADJ = 500
KILL_GRACE_S = 10


def engine_request(spec: ContainerSpec) -> dict[str, Any]:
    """Keyword arguments for APIClient.create_container. Every security setting is explicit, none defaulted."""
    security_opt = ["no-new-privileges:true"]
    if spec.seccomp.profile_json is not None:
        security_opt.append(f"seccomp={spec.seccomp.profile_json}")
    limits = spec.limits
    host_config: dict[str, Any] = {
        "Privileged": False,
        "ReadonlyRootfs": spec.read_only_rootfs,
        "CapDrop": list(spec.cap_drop),
        "CapAdd": list(spec.cap_add),
        "SecurityOpt": security_opt,
        "Memory": limits.memory_bytes,
        "MemorySwap": limits.memory_swap_bytes,
        "NanoCpus": limits.nano_cpus,
        "CpuShares": CPU_SHARES,
        "PidsLimit": limits.pids_limit,
        "Ulimits": [{"Name": "nofile", "Soft": limits.nofile_limit, "Hard": limits.nofile_limit}],
        "OomScoreAdj": OOM_SCORE_ADJ,
        "NetworkMode": spec.network.network_name or "none",
        "Tmpfs": {t.target: t.options for t in spec.tmpfs},
        "Mounts": [{"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only,
                    "BindOptions": {"Propagation": "rprivate"}} for m in spec.mounts],
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "IpcMode": "private",
        "CgroupnsMode": "private",
        "PublishAllPorts": False,
        "PortBindings": {},
        "Devices": [],
        # Output goes to onexd through the attach stream only: nothing (no secret) lands in engine log files.
        "LogConfig": {"Type": "none", "Config": {}},
    }
    return {
        "image": spec.image,
        # The argv is authoritative: an image ENTRYPOINT must not wrap it.
        "entrypoint": list(spec.command[:1]),
        "command": list(spec.command[1:]),
        "user": spec.user,
        "environment": [f"{k}={v}" for k, v in spec.env],
        "working_dir": spec.working_dir,
        "labels": dict(spec.labels),
        "name": spec.name,
        "hostname": "job",
        "stdin_open": True,
        "tty": False,
        "detach": False,  # with stdin_open: attach stdin once, so EOF on our side is EOF for the job
        "host_config": host_config,
        "use_config_proxy": False,  # never inject the client's proxy settings into a job
    }


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


class _OutputReader(threading.Thread):
    """Demultiplexes the attach stream, keeping at most `limit` bytes of stdout+stderr, draining the rest."""

    def __init__(self, sock: socket.socket, limit: int, on_output: OutputSink | None = None) -> None:
        super().__init__(name="onexd-output", daemon=True)
        self.sock, self.limit, self.on_output = sock, limit, on_output
        self.out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self.kept = 0
        self.seen = 0  # every byte the job wrote, kept or cut (usage.outputBytes)

    def _read_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def run(self) -> None:
        try:
            while True:
                header = self._read_exactly(8)
                stream, size = header[0], struct.unpack(">I", header[4:])[0]
                remaining = size
                while remaining:
                    chunk = self.sock.recv(min(remaining, 65536))
                    if not chunk:
                        raise EOFError
                    remaining -= len(chunk)
                    self.seen += len(chunk)
                    room = self.limit - self.kept
                    if len(chunk) > room:
                        self.truncated = True
                        chunk = chunk[:max(room, 0)]
                    if chunk and stream in self.out:
                        self.out[stream] += chunk
                        self.kept += len(chunk)
                        if self.on_output is not None:
                            self.on_output(stream, chunk)
        except (EOFError, OSError):
            return


def _close_attach(attached: Any) -> None:
    """Close the hijacked attach connection in the order that leaves no half-closed object for the GC:
    the HTTP response first (it flushes through the socket), then the file object, then the socket."""
    for closeable in (getattr(attached, "_response", None), attached, getattr(attached, "_sock", None)):
        if closeable is not None:
            with contextlib.suppress(Exception):
                closeable.close()


class DockerRuntime:
    """Runs ContainerSpecs on a Docker engine through the SDK's low-level API."""

    def __init__(self, base_url: str = "unix:///var/run/docker.sock", timeout_s: int = 120) -> None:
        with _engine_errors("connecting to Docker"):
            self._client = docker.DockerClient(base_url=base_url, version="auto", timeout=timeout_s)
        self._api = self._client.api
        self._network_lock = threading.Lock()
        self._addresses: dict[str, str] = {}

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

    def _remember_address(self, cid: str, network: str) -> None:
        with contextlib.suppress(DockerException, requests.RequestException, OSError, KeyError):
            info = self._api.inspect_container(cid)
            address = info["NetworkSettings"]["Networks"][network]["IPAddress"]
            if address:
                if len(self._addresses) > 10_000:
                    self._addresses.clear()
                self._addresses[address] = info["Config"]["Labels"].get("onexd.job", "")

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
            reader = _OutputReader(raw, spec.limits.output_limit_bytes, on_output)
            reader.start()
            started = time.time()
            with _engine_errors(f"starting container {spec.name}"):
                self._api.start(cid)
            if spec.network.mode == "egress" and spec.network.network_name:
                self._remember_address(cid, spec.network.network_name)
            probe = CgroupProbe.attach(self._init_pid(cid), cid)  # before the input: a job reading it is still there
            self._feed(raw, stdin)
            timed_out = cancelled = False
            deadline = time.monotonic() + spec.limits.timeout_s
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
                state = self._api.inspect_container(cid)["State"]
            _close_attach(attached)
            # The kernel's own count in the job's cgroup is evidence too (the engine's flag can be missed).
            oom = bool(state.get("OOMKilled")) or bool(probe.tracker.oom_kills)
            if not oom and exit_code == EXIT_SIGNAL_BASE + 9 and not (timed_out or cancelled):
                oom = self._oom_event(cid, started - 1)
            status = status_for(exit_code, oom, timed_out, cancelled)
            reason = {"timed_out": f"killed after the {spec.limits.timeout_s}s timeout",
                      "cancelled": "cancelled", "oom_killed": "killed by the OOM killer at the memory limit"
                      }.get(status, describe_exit(exit_code))
            return RunResult(status=status, exit_code=exit_code, stdout=bytes(reader.out[1]),
                             stderr=bytes(reader.out[2]), truncated=reader.truncated,
                             duration_ms=round((finished - started) * 1000), started_at=started,
                             finished_at=finished, reason=reason,
                             usage=probe.usage(reader.seen, round((finished - started) * 1000)),
                             processes=probe.processes)
        finally:
            if attached is not None:
                _close_attach(attached)
            # By id when we have it; by name when creation was interrupted before we learned the id.
            self._remove(cid or spec.name)

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
