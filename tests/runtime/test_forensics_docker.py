"""Forensics on the real engine: usage from the cgroup, and the syscall seccomp stopped named from the kernel log."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from onexd.engine.request import JobRequest
from onexd.identity.principal import parse_subject
from onexd.jobs.records import JobRecord
from onexd.jobs.runner import JobRunner
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.kmsg import KernelLog
from tests.conftest import BASELINE, doc, write_bundle
from tests.runtime.conftest import STRICT, _profile

pytestmark = pytest.mark.docker
MiB = 1 << 20
DIR_CALLS = ("mkdir", "mkdirat", "rmdir")


def _strict_with(action: str, names: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """The baseline strict profile with `names` taken out of its allow list and given `action`."""
    allow = [n for n in STRICT["syscalls"][0]["names"] if n not in names]
    rule: dict[str, Any] = {"names": list(names), "action": action}
    if action == "SCMP_ACT_ERRNO":
        rule["errnoRet"] = 1
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, **extra,
            "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}, STRICT["syscalls"][1], rule]}


@pytest.fixture(scope="module")
def forensics_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = tmp_path_factory.mktemp("forensics-policy")
    shutil.copytree(BASELINE / "baseline", root / "baseline")
    profiles = [
        _profile("fx-py", image="onexd/runner-python", seccompProfile="runtime-default",
                 resources={"memory": "128Mi", "cpus": 1.0}),
        _profile("fx-sh", resources={"memory": "64Mi", "cpus": 1.0}),
        _profile("fx-kill-dirs", seccompProfile="fx-kill-dirs"),
        _profile("fx-errno-dirs", seccompProfile="fx-errno-dirs"),
    ]
    names = [p["metadata"]["name"] for p in profiles]
    write_bundle(root, "forensics", [
        doc("SeccompProfile", "fx-kill-dirs", {"profile": _strict_with("SCMP_ACT_KILL_PROCESS", DIR_CALLS)}),
        doc("SeccompProfile", "fx-errno-dirs", {"profile": _strict_with(
            "SCMP_ACT_ERRNO", DIR_CALLS, flags=["SECCOMP_FILTER_FLAG_LOG"])}),
        *profiles,
        doc("Capability", "fx-anything", {"adhoc": True, "profiles": names}),
        doc("Role", "fx-prober", {"permissions": ["nodes:execute"], "capabilities": ["fx-anything"]}),
        doc("RoleBinding", "fx-probers", {"roles": ["fx-prober"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


@pytest.fixture
def fx_runner(docker_runtime: DockerRuntime, tmp_path: Path, staging_dir: Path) -> JobRunner:
    kernel_log = KernelLog()
    assert kernel_log.probe() is None, "the test host must let root read /dev/kmsg"
    return JobRunner(docker_runtime, tmp_path / "state", staging_dir, environ={}, release_networks=True,
                     syscall_evidence=kernel_log)


def _run(runner: JobRunner, snapshot: Snapshot, profile: str, *command: str) -> JobRecord:
    outcome = runner.run(snapshot, parse_subject("UnixUser:root"), JobRequest(profile=profile, command=command))
    assert outcome.record is not None, outcome.decision.reasons
    return outcome.record


def test_memory_peak_of_a_40_mib_allocation(fx_runner: JobRunner, forensics_snapshot: Snapshot) -> None:
    """A job holding 40 MiB reports memoryPeakBytes >= 40 MiB and below its 128 MiB limit."""
    record = _run(fx_runner, forensics_snapshot, "fx-py", "python3", "-c",
                  "import time; b = bytearray(40 * 1024 * 1024); time.sleep(0.5); print(len(b))")
    assert record.status == "succeeded", record.stderr
    usage = record.as_dict()["usage"]
    assert 40 * MiB <= usage["memoryPeakBytes"] < 128 * MiB, usage
    assert usage["outputBytes"] == len("41943040\n") and usage["wallMs"] >= 500
    assert record.blocked_syscall is None


def test_cpu_of_a_one_second_busy_loop(fx_runner: JobRunner, forensics_snapshot: Snapshot) -> None:
    """A loop busy for 1 s of CPU reports cpuMs >= 500 (CPU time, so a loaded host cannot starve the test)."""
    record = _run(fx_runner, forensics_snapshot, "fx-py", "python3", "-c",
                  "import time\nwhile time.process_time() < 1.0: pass")
    assert record.status == "succeeded", record.stderr
    assert record.as_dict()["usage"]["cpuMs"] >= 500


def test_pids_peak_of_ten_forked_processes(fx_runner: JobRunner, forensics_snapshot: Snapshot) -> None:
    """Ten background children alive together: pidsPeak >= 10 (sampled pids.current on cgroup v1)."""
    record = _run(fx_runner, forensics_snapshot, "fx-sh", "sh", "-c",
                  "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait")
    assert record.status == "succeeded", record.stderr
    assert record.as_dict()["usage"]["pidsPeak"] >= 10


@pytest.mark.parametrize(("call", "argv"), [("mkdir", ("mkdir", "/tmp/x")), ("rmdir", ("rmdir", "/tmp"))])
def test_killed_syscall_is_named(fx_runner: JobRunner, forensics_snapshot: Snapshot, call: str,
                                 argv: tuple[str, ...]) -> None:
    """A node reading its input and then making a call its profile kills: failed, exit 159, the call named."""
    record = _run(fx_runner, forensics_snapshot, "fx-kill-dirs", "sh", "-c", 'read -r input; exec "$@"', "node",
                  *argv)
    assert (record.status, record.exit_code) == ("failed", 159), record.stderr
    blocked = record.as_dict()["blockedSyscall"]
    assert isinstance(blocked, dict), blocked
    assert (blocked["name"], blocked["arch"], blocked["action"]) == (call, "x86_64", "kill_process")
    assert call in record.reason


def test_errno_action_profile_is_reported_only_where_the_kernel_logs_it(
        fx_runner: JobRunner, forensics_snapshot: Snapshot, docker_runtime: DockerRuntime) -> None:
    """errno refusal: named (action errno) when the engine passes SECCOMP_FILTER_FLAG_LOG; on engines that drop
    the flag (Docker < 23) the kernel logs nothing and the record names nothing, never a guess."""
    record = _run(fx_runner, forensics_snapshot, "fx-errno-dirs", "sh", "-c", 'read -r input; exec "$@"', "node",
                  "mkdir", "/tmp/x")
    assert record.status == "failed" and record.exit_code == 1 and "not permitted" in record.stderr
    blocked = record.as_dict()["blockedSyscall"]
    if docker_runtime.passes_seccomp_flags():
        assert isinstance(blocked, dict) and (blocked["name"], blocked["action"]) == ("mkdir", "errno")
    else:
        assert blocked is None


def test_job_not_killed_by_seccomp_has_no_blocked_syscall(fx_runner: JobRunner,
                                                          forensics_snapshot: Snapshot) -> None:
    """The same killing profile, a job that never makes the call: blockedSyscall null."""
    record = _run(fx_runner, forensics_snapshot, "fx-kill-dirs", "sh", "-c", "read -r input; echo fine")
    assert record.status == "succeeded" and record.blocked_syscall is None
