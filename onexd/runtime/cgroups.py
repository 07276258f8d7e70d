"""What a job container used, read from its cgroup (v1 and v2): pure parsers plus a sampler fed by the runtime.

The engine removes a container's cgroup as soon as its last process exits, before onexd can read it, so the
numbers are *sampled* while the job runs (every ~50 ms, and once more right after the start). Each number says
what it is in docs/operator-guide.md ("Job forensics"): peak counters where the kernel keeps one, otherwise the
highest sampled value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

CGROUP_ROOT = Path("/sys/fs/cgroup")
ReadText = Callable[[Path], str]


@dataclass(frozen=True, slots=True)
class CgroupLocation:
    """The directories holding a container's counters. On v2 (or a v1 controller missing) they coincide."""

    version: Literal[1, 2]
    memory: Path
    cpu: Path
    pids: Path


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading. None: the counter is not there (an older kernel, a controller not mounted)."""

    cpu_ns: int | None = None
    memory_peak_bytes: int | None = None  # the kernel's own peak (v1 max_usage_in_bytes, v2 memory.peak)
    memory_current_bytes: int | None = None
    pids_current: int | None = None
    pids_peak: int | None = None  # v2 pids.peak (Linux 6.1+); v1 keeps none
    oom_kills: int | None = None
    processes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Usage:
    """SPEC §14 `usage`; None where it could not be measured (no readable cgroup)."""

    cpu_ms: int | None
    memory_peak_bytes: int | None
    pids_peak: int | None
    output_bytes: int
    wall_ms: int
    oom_kills: int | None = None
    samples: int = 0

    def as_dict(self) -> dict[str, int | None]:
        return {"cpuMs": self.cpu_ms, "memoryPeakBytes": self.memory_peak_bytes, "pidsPeak": self.pids_peak,
                "outputBytes": self.output_bytes, "wallMs": self.wall_ms, "oomKills": self.oom_kills,
                "samples": self.samples}

    @classmethod
    def from_dict(cls, data: dict[str, int | None]) -> Usage:
        return cls(cpu_ms=data.get("cpuMs"), memory_peak_bytes=data.get("memoryPeakBytes"),
                   pids_peak=data.get("pidsPeak"), output_bytes=int(data.get("outputBytes") or 0),
                   wall_ms=int(data.get("wallMs") or 0), oom_kills=data.get("oomKills"),
                   samples=int(data.get("samples") or 0))


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as {controller: path}; the v2 unified hierarchy is the key ''."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
            continue
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def _v1_dir(root: Path, controller: str, path: str) -> Path:
    return root / controller / path.lstrip("/")


def locate(proc_cgroup: str, root: Path = CGROUP_ROOT) -> CgroupLocation | None:
    """Where a process's counters live: v1 when its memory controller is on a v1 hierarchy (hybrid hosts
    such as this project's CI), v2 otherwise. None when neither is recognisable."""
    paths = parse_proc_cgroup(proc_cgroup)
    if "memory" in paths:
        unified = paths.get("")
        fallback = _v1_dir(root, "memory", paths["memory"])
        return CgroupLocation(
            version=1, memory=fallback,
            cpu=_v1_dir(root, "cpuacct", paths["cpuacct"]) if "cpuacct" in paths else fallback,
            pids=(_v1_dir(root, "pids", paths["pids"]) if "pids" in paths
                  else root / "unified" / unified.lstrip("/") if unified else fallback))
    if "" in paths:
        directory = root / paths[""].lstrip("/")
        return CgroupLocation(version=2, memory=directory, cpu=directory, pids=directory)
    return None


def locate_container(container_id: str, root: Path = CGROUP_ROOT,
                     is_dir: Callable[[Path], bool] = Path.is_dir) -> CgroupLocation | None:
    """A Docker container's cgroup from its id alone, for the engine's two drivers (cgroupfs: docker/<id>;
    systemd: system.slice/docker-<id>.scope) on v1 and v2. Needs no /proc access, so it also works under a
    unit with ProtectProc=invisible, where other users' processes cannot be looked at."""
    leaves = (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")
    if is_dir(root / "memory"):  # v1 or hybrid: controllers each have their hierarchy
        for leaf in leaves:
            if is_dir(root / "memory" / leaf):
                cpu = root / "cpuacct" / leaf
                pids = root / "pids" / leaf
                return CgroupLocation(version=1, memory=root / "memory" / leaf,
                                      cpu=cpu if is_dir(cpu) else root / "memory" / leaf,
                                      pids=pids if is_dir(pids) else root / "memory" / leaf)
        return None
    for leaf in leaves:
        if is_dir(root / leaf):
            return CgroupLocation(version=2, memory=root / leaf, cpu=root / leaf, pids=root / leaf)
    return None


def _int(read: ReadText, path: Path) -> int | None:
    try:
        return int(read(path).strip())
    except (OSError, ValueError):
        return None


def _keyed(read: ReadText, path: Path, key: str) -> int | None:
    """A value from a `key value` file (cpu.stat, memory.events, memory.oom_control)."""
    try:
        text = read(path)
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def _processes(read: ReadText, path: Path) -> frozenset[int]:
    try:
        return frozenset(int(x) for x in read(path).split() if x.isdigit())
    except OSError:
        return frozenset()


def read_sample(location: CgroupLocation, read: ReadText = Path.read_text) -> Sample:
    """One reading of a container's counters. A file that vanished (the job ended) reads as None."""
    if location.version == 1:
        return Sample(
            cpu_ns=_int(read, location.cpu / "cpuacct.usage"),
            memory_peak_bytes=_int(read, location.memory / "memory.max_usage_in_bytes"),
            memory_current_bytes=_int(read, location.memory / "memory.usage_in_bytes"),
            pids_current=_int(read, location.pids / "pids.current"),
            oom_kills=_keyed(read, location.memory / "memory.oom_control", "oom_kill"),
            processes=_processes(read, location.memory / "cgroup.procs"))
    usec = _keyed(read, location.cpu / "cpu.stat", "usage_usec")
    return Sample(
        cpu_ns=None if usec is None else usec * 1000,
        memory_peak_bytes=_int(read, location.memory / "memory.peak"),
        memory_current_bytes=_int(read, location.memory / "memory.current"),
        pids_current=_int(read, location.pids / "pids.current"),
        pids_peak=_int(read, location.pids / "pids.peak"),
        oom_kills=_keyed(read, location.memory / "memory.events", "oom_kill"),
        processes=_processes(read, location.pids / "cgroup.procs"))


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


@dataclass
class UsageTracker:
    """Folds samples into a Usage: counters only grow, so the highest reading is the best one we saw."""

    cpu_ns: int | None = None
    memory_peak_bytes: int | None = None
    pids_peak: int | None = None
    oom_kills: int | None = None
    samples: int = 0
    processes: set[int] = field(default_factory=set)

    def add(self, sample: Sample) -> None:
        if sample.cpu_ns is None and sample.memory_peak_bytes is None and sample.memory_current_bytes is None:
            return  # the cgroup is gone: nothing was read
        self.samples += 1
        self.cpu_ns = _max(self.cpu_ns, sample.cpu_ns)
        self.memory_peak_bytes = _max(_max(self.memory_peak_bytes, sample.memory_peak_bytes),
                                      sample.memory_current_bytes)
        self.pids_peak = _max(_max(self.pids_peak, sample.pids_peak), sample.pids_current)
        self.oom_kills = _max(self.oom_kills, sample.oom_kills)
        self.processes |= sample.processes

    def usage(self, output_bytes: int, wall_ms: int) -> Usage:
        return Usage(cpu_ms=None if self.cpu_ns is None else self.cpu_ns // 1_000_000,
                     memory_peak_bytes=self.memory_peak_bytes, pids_peak=self.pids_peak,
                     output_bytes=output_bytes, wall_ms=wall_ms, oom_kills=self.oom_kills, samples=self.samples)


class CgroupProbe:
    """The sampler one running container gets: attach to its init process, sample, fold. Never raises: a
    container we cannot read (no /proc, a cgroup gone) yields a Usage of None values, not a failed job."""

    def __init__(self, location: CgroupLocation | None, init_pid: int | None,
                 read: ReadText = Path.read_text) -> None:
        self.location, self.read = location, read
        self.tracker = UsageTracker()
        if init_pid:
            self.tracker.processes.add(init_pid)

    @classmethod
    def attach(cls, init_pid: int | None, container_id: str, proc: Path = Path("/proc"), root: Path = CGROUP_ROOT,
               read: ReadText = Path.read_text) -> CgroupProbe:
        """Find the container's cgroup (by id; else by its first process) and take a first sample."""
        location = locate_container(container_id, root)
        if location is None and init_pid:  # a layout we do not know: ask the process where it lives
            try:
                location = locate(read(proc / str(init_pid) / "cgroup"), root)
            except OSError:
                location = None  # the process is already gone, or hidden from us
        # An exiting process is moved to the root cgroup: the host's totals must never pass for the job's.
        if location is not None and container_id not in str(location.memory):
            location = None
        probe = cls(location, init_pid, read)
        probe.sample()
        return probe

    def sample(self) -> None:
        if self.location is not None:
            self.tracker.add(read_sample(self.location, self.read))

    @property
    def processes(self) -> frozenset[int]:
        return frozenset(self.tracker.processes)

    def usage(self, output_bytes: int, wall_ms: int) -> Usage:
        return self.tracker.usage(output_bytes, wall_ms)
