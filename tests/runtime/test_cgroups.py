"""Usage from a container's cgroup: /proc/PID/cgroup parsing and v1/v2 counters, on fixture trees."""

from __future__ import annotations

from pathlib import Path

from onexd.runtime.cgroups import (
    CgroupProbe,
    Sample,
    Usage,
    UsageTracker,
    locate,
    locate_container,
    parse_proc_cgroup,
    read_sample,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _proc(tmp_path: Path, version: str, pid: int = 42) -> Path:
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cgroup").write_text((FIXTURES / version / "proc-cgroup").read_text())
    return proc


def test_parse_proc_cgroup_splits_joined_controllers_and_keeps_unified() -> None:
    """`cpu,cpuacct` names both controllers; the v2 line is the '' key."""
    paths = parse_proc_cgroup("3:cpu,cpuacct:/docker/x\n0::/system.slice/y\nnot a line\n")
    assert paths == {"cpu": "/docker/x", "cpuacct": "/docker/x", "": "/system.slice/y"}


def test_hybrid_host_reads_v1_controllers() -> None:
    """With memory on a v1 hierarchy (this project's CI host) every counter comes from v1 directories."""
    root = FIXTURES / "cgroup-v1" / "sys"
    location = locate((FIXTURES / "cgroup-v1" / "proc-cgroup").read_text(), root)
    assert location is not None and location.version == 1
    assert location.cpu == root / "cpuacct" / "docker" / "abc"
    assert location.pids == root / "pids" / "docker" / "abc"


def test_v1_sample_reads_cpuacct_max_usage_and_pids_current() -> None:
    """v1: cpuacct.usage (ns), memory.max_usage_in_bytes, pids.current, cgroup.procs, oom_kill."""
    root = FIXTURES / "cgroup-v1" / "sys"
    location = locate((FIXTURES / "cgroup-v1" / "proc-cgroup").read_text(), root)
    assert location is not None
    sample = read_sample(location)
    assert sample == Sample(cpu_ns=987654321, memory_peak_bytes=44040192, memory_current_bytes=2097152,
                            pids_current=7, pids_peak=None, oom_kills=0, processes=frozenset({201, 202}))


def test_v2_sample_reads_cpu_stat_memory_peak_pids_peak_and_oom_kill() -> None:
    """v2: cpu.stat usage_usec, memory.peak, pids.peak, memory.events oom_kill, cgroup.procs."""
    root = FIXTURES / "cgroup-v2" / "sys"
    location = locate((FIXTURES / "cgroup-v2" / "proc-cgroup").read_text(), root)
    assert location is not None and location.version == 2
    assert location.memory == root / "system.slice" / "docker-abc.scope"
    sample = read_sample(location)
    assert sample.cpu_ns == 1234567000 and sample.memory_peak_bytes == 52428800
    assert sample.pids_peak == 12 and sample.pids_current == 3 and sample.oom_kills == 1
    assert sample.processes == frozenset({101, 102, 103})


def test_probe_folds_samples_into_usage_in_the_documented_units(tmp_path: Path) -> None:
    """cpuMs is cpu ns // 1e6; pidsPeak the kernel's peak (v2) or the highest sampled count."""
    probe = CgroupProbe.attach(42, "abc", proc=_proc(tmp_path, "cgroup-v2"), root=FIXTURES / "cgroup-v2" / "sys")
    usage = probe.usage(output_bytes=10, wall_ms=2000)
    assert usage == Usage(cpu_ms=1234, memory_peak_bytes=52428800, pids_peak=12, output_bytes=10, wall_ms=2000,
                          oom_kills=1, samples=1)
    assert probe.processes == frozenset({42, 101, 102, 103})


def test_tracker_keeps_the_highest_reading_and_ignores_a_vanished_cgroup() -> None:
    """A later, lower pids count or an empty read (the cgroup is gone) never lowers what was seen."""
    tracker = UsageTracker()
    tracker.add(Sample(cpu_ns=5_000_000, memory_peak_bytes=100, memory_current_bytes=90, pids_current=11))
    tracker.add(Sample(cpu_ns=9_000_000, memory_peak_bytes=None, memory_current_bytes=150, pids_current=2))
    tracker.add(Sample())
    usage = tracker.usage(0, 0)
    assert (usage.cpu_ms, usage.memory_peak_bytes, usage.pids_peak, usage.samples) == (9, 150, 11, 2)


def test_probe_of_a_process_already_gone_measures_nothing(tmp_path: Path) -> None:
    """No /proc entry (the job exited at once): usage numbers are None, never invented."""
    probe = CgroupProbe.attach(4242, "gone", proc=tmp_path, root=FIXTURES / "cgroup-v2" / "sys")
    usage = probe.usage(output_bytes=3, wall_ms=5)
    assert (usage.cpu_ms, usage.memory_peak_bytes, usage.pids_peak, usage.samples) == (None, None, None, 0)
    assert probe.processes == frozenset({4242})


def test_usage_round_trips_through_its_record_form() -> None:
    """The record keeps usage as a dict with the SPEC's camelCase names."""
    usage = Usage(cpu_ms=1, memory_peak_bytes=2, pids_peak=3, output_bytes=4, wall_ms=5, oom_kills=0, samples=6)
    assert set(usage.as_dict()) >= {"cpuMs", "memoryPeakBytes", "pidsPeak", "outputBytes", "wallMs"}
    assert Usage.from_dict(usage.as_dict()) == usage


def test_probe_refuses_a_cgroup_that_is_not_the_containers(tmp_path: Path) -> None:
    """A process caught exiting shows the root cgroup: host totals are never reported as the job's usage."""
    proc = tmp_path / "proc" / "42"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text("4:memory:/\n2:cpuacct:/\n9:pids:/\n0::/\n")
    probe = CgroupProbe.attach(42, "unknown-layout", proc=tmp_path / "proc", root=FIXTURES / "cgroup-v1" / "sys")
    assert probe.location is None and probe.usage(0, 0).memory_peak_bytes is None


def test_locate_container_by_id_on_v1_and_v2_without_proc() -> None:
    """The cgroupfs driver's docker/<id> directories are found from the id alone (no /proc needed)."""
    v1 = locate_container("abc", FIXTURES / "cgroup-v1" / "sys")
    assert v1 is not None and v1.version == 1
    assert v1.cpu == FIXTURES / "cgroup-v1" / "sys" / "cpuacct" / "docker" / "abc"
    v2 = locate_container("abc", FIXTURES / "cgroup-v2" / "sys")
    assert v2 is not None and v2.version == 2
    assert v2.memory == FIXTURES / "cgroup-v2" / "sys" / "system.slice" / "docker-abc.scope"
    assert locate_container("other", FIXTURES / "cgroup-v2" / "sys") is None


def test_probe_finds_the_cgroup_by_id_when_proc_is_hidden(tmp_path: Path) -> None:
    """ProtectProc=invisible hides the job's /proc entry: usage still comes from the id's cgroup."""
    probe = CgroupProbe.attach(42, "abc", proc=tmp_path / "no-proc", root=FIXTURES / "cgroup-v1" / "sys")
    assert probe.usage(0, 0).memory_peak_bytes == 44040192
