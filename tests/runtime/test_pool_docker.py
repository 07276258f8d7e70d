"""The warm pool on a real engine: same lockdown as cold, CIS section 5, never reused, drained, nothing left."""

from __future__ import annotations

import copy
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from onexd.config import PoolConfig
from onexd.engine.request import JobRequest
from onexd.identity.principal import parse_subject
from onexd.jobs.pool import WarmPool
from onexd.jobs.records import JobRecord
from onexd.jobs.runner import JobRunner
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.docker import DockerRuntime
from onexd.runtime.images import build_images
from onexd.spec import POOL_LABEL
from tests.conftest import BASELINE, doc, write_bundle
from tests.runtime import cis
from tests.runtime.conftest import probe_docs, run_adhoc
from tests.runtime.test_docker import PROBE, _kv

pytestmark = pytest.mark.docker

# The probe profile, warm; a job writes, reads and names its container (the engine's hostname file path).
MARK = ("cid=$(grep -o 'containers/[0-9a-f]*/hostname' /proc/self/mountinfo | cut -d/ -f2); echo cid=$cid; "
        "if [ -e /tmp/mark ]; then echo seen=yes; else echo seen=no; fi; echo x > /tmp/mark")


def _snapshot(root: Path, memory: str = "64Mi", size: int = 2) -> Snapshot:
    shutil.copytree(BASELINE / "baseline", root / "baseline")
    docs = copy.deepcopy(probe_docs())  # probe_docs shares its profile dicts: never edit them
    for d in docs:
        if d["kind"] == "SandboxProfile" and d["metadata"]["name"] == "probe":
            d["spec"] = {**d["spec"], "warmPool": {"size": size},
                         "resources": {**d["spec"]["resources"], "memory": memory}}
        if d["kind"] == "SandboxProfile" and d["metadata"]["name"] == "killer":
            d["spec"] = {**d["spec"], "warmPool": {"size": 1}}
    write_bundle(root, "probe", docs)
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


def _pool_containers(**label: str) -> list[dict[str, Any]]:
    client = docker.APIClient(version="auto")
    try:
        wanted = [f"{POOL_LABEL}={v}" if k == "key" else POOL_LABEL for k, v in label.items()] or [POOL_LABEL]
        return list(client.containers(all=True, filters={"label": wanted}))
    finally:
        client.close()


def _wait_idle(pool: WarmPool, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(s["idle"] for s in pool.state()) < count:
        assert time.monotonic() < deadline, f"pool never reached {count} idle slots: {pool.state()}"
        time.sleep(0.05)


@pytest.fixture
def warm(docker_runtime: DockerRuntime, tmp_path: Path, staging_dir: Path) -> Iterator[tuple[WarmPool, Snapshot]]:
    build_images(docker_runtime, only=["onexd/runner-busybox"])  # the launcher, if another build dropped it
    snapshot = _snapshot(tmp_path / "policy")
    pool = WarmPool(docker_runtime, docker_runtime, PoolConfig(maxContainers=4), staging_dir,
                    lambda s, n: None, interval_s=0.05)
    pool.configure(snapshot)
    pool.start()
    _wait_idle(pool, 2)
    try:
        yield pool, snapshot
    finally:
        pool.stop()


@pytest.fixture
def pooled(docker_runtime: DockerRuntime, tmp_path: Path, staging_dir: Path,
           warm: tuple[WarmPool, Snapshot]) -> JobRunner:
    return JobRunner(docker_runtime, tmp_path / "state", staging_dir, environ={}, release_networks=True,
                     pool=warm[0])


def _run(runner: JobRunner, snapshot: Snapshot, script: str, profile: str = "probe", **kw: Any) -> JobRecord:
    record = run_adhoc(runner, snapshot, profile, script, **kw).record
    assert record is not None
    return record


def test_pooled_probe_reports_the_same_lockdown_as_cold(pooled: JobRunner, runner: JobRunner,
                                                         warm: tuple[WarmPool, Snapshot]) -> None:
    """uid/gid, capability sets, no-new-privs, seccomp 2, read-only root, no socket, escapes denied, /proc/sys and
    /sys read-only, only lo, writable tmpfs and nofile: a pooled job sees exactly what a cold one sees."""
    snapshot = warm[1]
    hot = _run(pooled, snapshot, PROBE)
    cold = _run(runner, snapshot, PROBE)
    assert hot.pool and hot.pool["digest"] == hot.policy_digest and not cold.pool
    assert hot.status == cold.status == "succeeded", (hot, cold)
    assert _kv(hot.stdout) == _kv(cold.stdout)
    assert _kv(hot.stdout)["Seccomp"] == "2" and _kv(hot.stdout)["CapEff"] == "0000000000000000"


def test_pooled_container_passes_cis_section_5_under_the_job_name(pooled: JobRunner,
                                                                  warm: tuple[WarmPool, Snapshot]) -> None:
    """While a pooled job runs, its container carries the job's name and passes CIS section 5's checks."""
    snapshot = warm[1]
    cancel = threading.Event()
    job_id = f"pooled{time.time_ns():x}"
    out: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: out.update(
        record=_run(pooled, snapshot, "sleep 60", cancel=cancel, job_id=job_id)))
    worker.start()
    client = docker.APIClient(version="auto")
    try:
        deadline, found = time.monotonic() + 20, None
        while found is None and time.monotonic() < deadline:
            found = next(iter(client.containers(filters={"name": f"onexd-job-{job_id}", "status": "running"})), None)
            time.sleep(0.05)
        assert found is not None, "the pooled job's container never carried the job's name"
        c = client.inspect_container(found["Id"])
    finally:
        cancel.set()
        worker.join()
        client.close()
    assert out["record"].status == "cancelled" and out["record"].pool
    assert cis.failures(c) == {}
    hc = c["HostConfig"]
    assert hc["ReadonlyRootfs"] is True and hc["CapDrop"] == ["ALL"] and "no-new-privileges:true" in hc["SecurityOpt"]
    assert c["Config"]["Labels"][POOL_LABEL] == out["record"].pool["key"]


def test_pooled_jobs_never_share_a_container(pooled: JobRunner, warm: tuple[WarmPool, Snapshot]) -> None:
    """Two consecutive pooled jobs run in different containers; a file one writes in /tmp is absent for the next."""
    pool, snapshot = warm
    first = _run(pooled, snapshot, MARK)
    _wait_idle(pool, 2)
    second = _run(pooled, snapshot, MARK)
    assert first.pool and second.pool and first.pool["slot"] != second.pool["slot"]
    a, b = _kv(first.stdout), _kv(second.stdout)
    assert len(a["cid"]) == 64 and a["cid"] != b["cid"]
    assert a["seen"] == b["seen"] == "no"


def test_a_profile_change_drains_old_slots_within_5s(pooled: JobRunner, warm: tuple[WarmPool, Snapshot],
                                                     tmp_path: Path) -> None:
    """After a profile change no slot of the old key is left within 5 s, and new jobs run on new-digest slots."""
    pool, old = warm
    old_keys = {s["key"] for s in pool.state()}
    new = _snapshot(tmp_path / "new", memory="96Mi")
    started = time.monotonic()
    pool.configure(new)
    while any(_pool_containers(key=k) for k in old_keys):
        assert time.monotonic() - started < 5, "old slots still exist 5 s after the change"
        time.sleep(0.05)
    _wait_idle(pool, 2)
    record = _run(pooled, new, "true")
    assert record.pool and record.pool["digest"] == new.digest != old.digest
    assert record.pool["key"] not in old_keys


def test_stop_leaves_no_slot_and_reap_removes_what_a_crash_left(docker_runtime: DockerRuntime,
                                                                warm: tuple[WarmPool, Snapshot]) -> None:
    """Stopping the pool removes its idle slots; slots a crashed daemon left are reaped at the next start."""
    pool, snapshot = warm
    pool.stop()
    assert _pool_containers() == []
    crashed = WarmPool(docker_runtime, docker_runtime, PoolConfig(maxContainers=2), pool.staging_dir,
                       lambda s, n: None)
    crashed.configure(snapshot)
    crashed.tick()
    assert len(_pool_containers()) == 2
    reaped = DockerRuntime().reap()
    assert len([n for n in reaped if n.startswith("onexd-slot-")]) == 2 and _pool_containers() == []
    crashed.stop()  # what it still holds is gone already


def test_pooled_jobs_get_usage_and_seccomp_reporting_like_cold_ones(pooled: JobRunner, runner: JobRunner,
                                                                    warm: tuple[WarmPool, Snapshot]) -> None:
    """A pooled job's record has the cold job's forensics: usage sampled from its cgroup, and a seccomp kill
    reported as such (exit 159, the reason naming seccomp)."""
    pool, snapshot = warm
    _wait_idle(pool, 3)
    busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done"
    hot, cold = _run(pooled, snapshot, busy), _run(runner, snapshot, busy)
    assert hot.pool and hot.usage is not None and cold.usage is not None
    assert hot.usage["outputBytes"] == cold.usage["outputBytes"] == 5
    assert hot.usage["memoryPeakBytes"] and hot.usage["cpuMs"] is not None and hot.usage["cpuMs"] >= 0
    killed = _run(pooled, snapshot, "echo before; exec mkdir /tmp/x", profile="killer")
    assert killed.pool and (killed.status, killed.exit_code, killed.stdout) == ("failed", 159, "before\n")
    assert "seccomp" in killed.reason


def test_secrets_of_one_pooled_job_are_never_visible_to_another(docker_runtime: DockerRuntime, tmp_path: Path,
                                                                staging_dir: Path) -> None:
    """Two pooled jobs of one node, each with its own secret value: each reads only its own; a slot's secrets
    directory is empty until its claim and gone after its job."""
    build_images(docker_runtime, only=["onexd/runner-busybox"])
    root = tmp_path / "secret-policy"
    shutil.copytree(BASELINE / "baseline", root / "baseline")
    docs = copy.deepcopy(probe_docs())  # probe_docs shares its profile dicts: never edit them
    for d in docs:
        if d["kind"] == "Capability":
            d["spec"] = {**d["spec"], "nodes": ["secretive"], "secrets": ["token"]}
    docs += [doc("SecretSource", "env", {"type": "env", "prefix": "POOLTEST_"}),
             doc("Secret", "token", {"source": "env", "key": "TOKEN"}),
             doc("Node", "secretive", {"version": "1.0.0", "profile": "probe", "secrets": ["token"],
                                       "warmPool": {"size": 2},
                                       "command": ["sh", "-c", "cat /run/secrets/token; echo; ls /run/secrets"]})]
    write_bundle(root, "probe", docs)
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    snapshot = ev.snapshot
    pool = WarmPool(docker_runtime, docker_runtime, PoolConfig(maxContainers=2), staging_dir, lambda s, n: None,
                    interval_s=0.05)
    pool.configure(snapshot)
    pool.start()
    try:
        _wait_idle(pool, 2)
        assert [p.name for p in staging_dir.iterdir() if any(p.iterdir())] == []  # nothing staged before a claim
        records = []
        for value in ("alpha-" + uuid.uuid4().hex, "beta-" + uuid.uuid4().hex):
            runner = JobRunner(docker_runtime, tmp_path / "state", staging_dir, environ={"POOLTEST_TOKEN": value},
                               pool=pool)
            outcome = runner.run(snapshot, parse_subject("UnixUser:root"), JobRequest(node="secretive", input=None))
            assert outcome.record is not None
            records.append((value, outcome.record))
        (a, first), (b, second) = records
        assert first.pool and second.pool and first.pool["slot"] != second.pool["slot"]
        assert first.status == second.status == "succeeded", records
        # Output is masked: each job printed its own value (masked as ***), never the other's.
        assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0] == "***"
        assert b not in first.stdout and a not in second.stdout
        assert first.stdout.splitlines()[1:] == ["token"]
    finally:
        pool.stop()
