"""Jobs on the real Docker engine: what a job can see and do, how it ends, and what `docker inspect` shows."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from onexd.jobs.runner import JobRunner
from onexd.policy.snapshot import Snapshot
from onexd.runtime.docker import DockerRuntime, engine_request
from onexd.spec import ContainerSpec, Limits, NetworkPlacement, SeccompSetting
from tests.runtime import cis
from tests.runtime.conftest import run_adhoc

pytestmark = pytest.mark.docker

PROBE = r"""
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
echo "uid=$(id -u)"; echo "gid=$(id -g)"
if touch /rootfs-probe 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi
if [ -e /var/run/docker.sock ] || [ -e /run/docker.sock ]; then echo sock=present; else echo sock=absent; fi
echo "mountinfo_sock=$(grep -c docker.sock /proc/self/mountinfo)"
mkdir -p /tmp/m
mount -t tmpfs none /tmp/m 2>/dev/null; echo "mount=$?"
unshare -U true 2>/dev/null; echo "unshare=$?"
chroot / true 2>/dev/null; echo "chroot=$?"
mknod /tmp/node c 1 3 2>/dev/null; echo "mknod=$?"
(: > /proc/sys/kernel/hostname) 2>/dev/null; echo "procsys_write=$?"
(: > /sys/kernel/profiling) 2>/dev/null; echo "sys_write=$?"
echo "netdevs=$(ls /sys/class/net | tr '\n' ',')"
echo "routes=$(($(wc -l < /proc/net/route) - 1))"
echo "nofile=$(ulimit -n)"
echo "tmp_write=$(echo x > /tmp/w && echo ok)"
"""


def _kv(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_probe_sees_a_locked_down_sandbox(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """No capabilities, no-new-privs, seccomp, non-root, read-only root, no socket, no escapes, no network."""
    record = run_adhoc(runner, probe_snapshot, "probe", PROBE).record
    assert record is not None and record.status == "succeeded", record
    seen = _kv(record.stdout)
    assert seen["CapEff"] == seen["CapPrm"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1" and seen["Seccomp"] == "2"
    assert (seen["uid"], seen["gid"]) == ("1000", "1000")
    assert seen["rootfs"] == "ro" and seen["tmp_write"] == "ok"
    assert seen["sock"] == "absent" and seen["mountinfo_sock"] == "0"
    for escape in ("mount", "unshare", "chroot", "mknod", "procsys_write", "sys_write"):
        assert seen[escape] != "0", f"{escape} succeeded"
    assert seen["netdevs"] == "lo," and seen["routes"] == "0"
    assert seen["nofile"] == "128"


def test_capability_adds_reach_only_the_bounding_set(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """A profile's allowed adds are the only bits in CapBnd; a non-root job has none effective."""
    record = run_adhoc(runner, probe_snapshot, "probe-caps", PROBE).record
    assert record is not None and record.status == "succeeded", record
    seen = _kv(record.stdout)
    chown, net_bind_service = 1 << 0, 1 << 10
    assert int(seen["CapBnd"], 16) == chown | net_bind_service
    assert seen["CapEff"] == seen["CapPrm"] == "0000000000000000"


def test_runtime_default_seccomp_is_applied(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """`runtime-default` still filters (Seccomp: 2): the engine's profile, never unconfined."""
    record = run_adhoc(runner, probe_snapshot, "runtime-default", PROBE).record
    assert record is not None and _kv(record.stdout)["Seccomp"] == "2"


def test_exit_code_is_reported_as_failed(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """`exit 7` is failed with exitCode 7."""
    record = run_adhoc(runner, probe_snapshot, "probe", "echo out; echo err >&2; exit 7").record
    assert record is not None
    assert (record.status, record.exit_code, record.stdout, record.stderr) == ("failed", 7, "out\n", "err\n")


def test_output_beyond_the_cap_is_cut_and_flagged(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """10 MB of output under a 64 KiB cap is cut to exactly the cap and marked truncated."""
    record = run_adhoc(runner, probe_snapshot, "tiny-output", "head -c 10485760 /dev/zero | tr '\\0' a").record
    assert record is not None and record.status == "succeeded"
    assert record.truncated
    assert len(record.stdout) == 64 * 1024 and set(record.stdout) == {"a"}


def test_memory_hog_is_oom_killed(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """A job growing past its 32 MiB limit is oom_killed (before its 10 s timeout)."""
    record = run_adhoc(runner, probe_snapshot, "hog", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done").record
    assert record is not None
    assert (record.status, record.exit_code) == ("oom_killed", 137), record


def test_sleep_is_timed_out_at_the_timeout(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """`sleep 600` under a 15 s timeout is killed and timed_out, well before 20 s."""
    record = run_adhoc(runner, probe_snapshot, "short", "sleep 600").record
    assert record is not None and record.status == "timed_out"
    assert record.duration_ms is not None and 15_000 <= record.duration_ms < 20_000


def test_fork_bomb_stops_at_the_pids_limit(runner: JobRunner, probe_snapshot: Snapshot,
                                           docker_runtime: DockerRuntime) -> None:
    """A fork bomb never exceeds the pids limit; the job ends, and the engine still runs jobs afterwards."""
    peak = {"pids": 0}
    done = threading.Event()
    client = docker.APIClient(version="auto")

    def sample() -> None:
        while not done.is_set():
            for c in client.containers(filters={"label": "onexd.managed=true"}):
                path = Path(f"/sys/fs/cgroup/pids/docker/{c['Id']}/pids.current")
                if not path.exists():
                    path = Path(f"/sys/fs/cgroup/system.slice/docker-{c['Id']}.scope/pids.current")
                with contextlib.suppress(OSError, ValueError):
                    peak["pids"] = max(peak["pids"], int(path.read_text()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        record = run_adhoc(runner, probe_snapshot, "bomb", "b() { b | b & }; b; sleep 30").record
    finally:
        done.set()
        sampler.join()
        client.close()
    assert record is not None and record.status in ("timed_out", "failed"), record
    assert "can't fork" in record.stderr or "Resource temporarily unavailable" in record.stderr
    assert 0 < peak["pids"] <= 32
    after = run_adhoc(runner, probe_snapshot, "probe", "echo alive").record
    assert after is not None and after.stdout == "alive\n"


def test_seccomp_kill_is_reported_and_harmless(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """A syscall the profile kills on ends the job as failed with a seccomp reason; the next job runs."""
    record = run_adhoc(runner, probe_snapshot, "killer", "echo before; exec mkdir /tmp/x").record
    assert record is not None
    assert (record.status, record.exit_code, record.stdout) == ("failed", 159, "before\n")
    assert "seccomp" in record.reason
    assert run_adhoc(runner, probe_snapshot, "probe", "true").record.status == "succeeded"  # type: ignore[union-attr]


def test_stdin_gets_the_input_as_json(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """The request input arrives on stdin as one JSON line (here through an ad-hoc `cat`)."""
    from onexd.engine.request import JobRequest
    from onexd.identity.principal import parse_subject

    request = JobRequest(profile="py", command=("python3", "-c", "import sys,json; print(json.load(sys.stdin))"))
    record = runner.run(probe_snapshot, parse_subject("UnixUser:root"), request).record
    assert record is not None
    # Ad-hoc jobs take no input: stdin is empty, so json.load fails and says so.
    assert record.status == "failed" and "JSONDecodeError" in record.stderr


def _running_container(job_id: str, timeout_s: float = 20) -> dict[str, Any]:
    client = docker.APIClient(version="auto")
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = client.containers(filters={"label": f"onexd.job={job_id}", "status": "running"})
            if found:
                return dict(client.inspect_container(found[0]["Id"]))
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"job {job_id} never ran")


def _inspect_while_running(runner: JobRunner, snapshot: Snapshot, profile: str) -> dict[str, Any]:
    cancel = threading.Event()
    job_id = f"inspect{time.time_ns():x}"
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(
        outcome=run_adhoc(runner, snapshot, profile, "sleep 60", cancel=cancel, job_id=job_id)))
    worker.start()
    try:
        return _running_container(job_id)
    finally:
        cancel.set()
        worker.join()
        assert result["outcome"].record.status == "cancelled"


@pytest.mark.parametrize("profile", ["probe", "in-a", "runtime-default"])
def test_docker_inspect_shows_exactly_the_policy(runner: JobRunner, probe_snapshot: Snapshot, profile: str) -> None:
    """HostConfig of a running job is the policy, field by field, and passes CIS section 5's automated checks."""
    c = _inspect_while_running(runner, probe_snapshot, profile)
    hc = c["HostConfig"]
    spec = probe_snapshot.profiles[profile]
    assert hc["Privileged"] is False and hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert "no-new-privileges:true" in hc["SecurityOpt"]
    if spec.seccompProfile != "runtime-default":
        assert any(o.startswith("seccomp=") and '"defaultAction":"SCMP_ACT_ERRNO"' in o for o in hc["SecurityOpt"])
    assert not any("unconfined" in o for o in hc["SecurityOpt"])
    assert hc["Memory"] == hc["MemorySwap"] == spec.resources.memory
    assert hc["NanoCpus"] == round(spec.resources.cpus * 1e9) and hc["PidsLimit"] == spec.resources.pids
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": spec.resources.nofile, "Hard": spec.resources.nofile}]
    expected_net = "none" if spec.zone == "none" else f"onexd-zone-{spec.zone}"
    assert hc["NetworkMode"] == expected_net
    assert list(c["NetworkSettings"]["Networks"]) == [expected_net]
    for ns in ("PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        assert hc.get(ns) in ("", "private", None), ns
    assert not hc.get("Devices") and not hc.get("PortBindings") and not c["NetworkSettings"]["Ports"]
    assert hc["RestartPolicy"]["Name"] == "no"
    assert [m["Destination"] for m in c["Mounts"]] == []  # ad-hoc: no node code, no secrets
    assert hc["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=8388608,mode=1777"}
    labels = {k: v for k, v in c["Config"]["Labels"].items() if k.startswith("onexd.")}
    assert set(labels) == {"onexd.managed", "onexd.job", "onexd.policy"}
    assert labels["onexd.policy"] == probe_snapshot.digest and labels["onexd.managed"] == "true"
    assert c["Config"]["User"] == spec.user
    assert cis.failures(c) == {}


def test_jobs_in_one_internal_zone_reach_each_other_and_no_one_else(runner: JobRunner,
                                                                     probe_snapshot: Snapshot) -> None:
    """Same zone: connected. Another zone or zone none: the same address is unreachable."""
    server_id = f"server{time.time_ns():x}"
    cancel = threading.Event()
    result: dict[str, Any] = {}
    server = threading.Thread(target=lambda: result.update(outcome=run_adhoc(
        runner, probe_snapshot, "in-a", "while true; do echo pong | nc -l -p 8080; done", cancel=cancel,
        job_id=server_id)))
    server.start()
    try:
        info = _running_container(server_id)
        address = info["NetworkSettings"]["Networks"]["onexd-zone-zone-a"]["IPAddress"]
        probe = ("for i in $(seq 1 40); do r=$(nc -w 1 {target} 8080 </dev/null 2>/dev/null); "
                 "[ \"$r\" = pong ] && echo reached && exit 0; sleep 0.25; done; echo unreachable; exit 1")
        same = run_adhoc(runner, probe_snapshot, "in-a-too", probe.format(target=f"onexd-job-{server_id}")).record
        other = run_adhoc(runner, probe_snapshot, "in-b", probe.format(target=address).replace("seq 1 40", "seq 1 4"))
        isolated = run_adhoc(runner, probe_snapshot, "probe", probe.format(target=address).replace("seq 1 40",
                                                                                                   "seq 1 4"))
    finally:
        cancel.set()
        server.join()
    assert same is not None and same.stdout.strip() == "reached", same
    assert other.record is not None and other.record.stdout.strip() == "unreachable"
    assert isolated.record is not None and isolated.record.stdout.strip() == "unreachable"


def test_reap_removes_leftovers(docker_runtime: DockerRuntime, probe_snapshot: Snapshot) -> None:
    """Containers and networks left by a crashed onexd are found by label and removed."""
    spec = ContainerSpec(name=f"onexd-job-leftover{time.time_ns():x}", image="onexd/runner-busybox",
                         command=("sleep", "60"), user="1000:1000", env=(), working_dir="/",
                         limits=Limits(32 << 20, 32 << 20, 10**8, 8, 64, 60, 1024),
                         seccomp=SeccompSetting("runtime-default"),
                         network=NetworkPlacement("zone-a", "internal", "onexd-zone-leftover"),
                         labels=(("onexd.managed", "true"), ("onexd.job", "leftover")))
    docker_runtime.ensure_network("onexd-zone-leftover", "leftover")
    client = docker.APIClient(version="auto")
    try:
        cid = client.create_container(**engine_request(spec))["Id"]
        client.start(cid)
        removed = docker_runtime.reap()
        assert spec.name in removed and "onexd-zone-leftover" in removed
        assert client.containers(all=True, filters={"id": cid}) == []
    finally:
        client.close()


def test_python_runner_has_the_full_standard_library(runner: JobRunner, probe_snapshot: Snapshot) -> None:
    """onexd/runner-python is Debian's python3 (not -minimal): the wider standard library imports."""
    from onexd.engine.request import JobRequest
    from onexd.identity.principal import parse_subject

    modules = "json, sqlite3, ssl, email, xml.etree.ElementTree, asyncio, decimal, zoneinfo, hashlib, csv, venv"
    request = JobRequest(profile="py", command=("python3", "-c", f"import {modules}; print('ok')"))
    record = runner.run(probe_snapshot, parse_subject("UnixUser:root"), request).record
    assert record is not None and (record.status, record.stdout) == ("succeeded", "ok\n"), record
