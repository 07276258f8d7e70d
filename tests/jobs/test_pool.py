"""The warm pool with the fake runtime: claims, misses, refills, never reuse, secrets at claim, drains, ceiling."""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from onexd.config import PoolConfig
from onexd.engine.pool import job_line, pool_key, shape_of, slot_spec
from onexd.engine.request import JobRequest
from onexd.identity.principal import parse_subject
from onexd.jobs.pool import WarmPool
from onexd.jobs.records import JobRecord
from onexd.jobs.runner import JobRunner, NodeStore
from onexd.jobs.store import JobStore
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.base import ImageInfo
from onexd.runtime.fake import FakeRuntime
from onexd.spec import LAUNCHER_PATH, POOL_LABEL, SECRETS_MOUNT
from tests.conftest import RESOURCES, doc, write_bundle

ROOT_USER = parse_subject("UnixUser:root")
TOKEN = "canary-" + uuid.uuid4().hex


def _docs(memory: str = "64Mi", size: int = 2) -> list[dict[str, Any]]:
    return [
        doc("SecretSource", "env", {"type": "env", "prefix": "POOLTEST_"}),
        doc("Secret", "token", {"source": "env", "key": "TOKEN"}),
        doc("SandboxProfile", "small", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                        "tmpfs": [{"path": "/tmp", "size": "4Mi", "mode": "1777"}],
                                        "resources": {**RESOURCES, "memory": memory},
                                        "warmPool": {"size": size}}),
        doc("Node", "echo", {"version": "1.0.0", "profile": "small", "command": ["cat"], "warmPool": {"size": size}}),
        doc("Node", "secretive", {"version": "1.0.0", "profile": "small", "command": ["cat", "/run/secrets/token"],
                                  "secrets": ["token"], "warmPool": {"size": 1}}),
        doc("SandboxProfile", "other", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                        "resources": {**RESOURCES, "memory": "32Mi"}}),
        doc("Node", "cold", {"version": "1.0.0", "profile": "other", "command": ["cat"]}),
        doc("Capability", "all", {"nodes": ["*"], "profiles": ["small", "other"], "secrets": ["token"],
                                  "adhoc": True}),
        doc("Role", "runner", {"permissions": ["nodes:execute"], "capabilities": ["all"]}),
        doc("RoleBinding", "runners", {"roles": ["runner"], "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ]


def _snapshot(root: Path, **kw: Any) -> Snapshot:
    root.mkdir(parents=True, exist_ok=True)
    write_bundle(root, "pooled", _docs(**kw))
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runtime() -> FakeRuntime:
    fake = FakeRuntime()
    fake.images["onexd/runner-busybox"] = ImageInfo("onexd/runner-busybox", "sha256:one", {})
    return fake


def _pool(runtime: FakeRuntime, staging_dir: Path, tmp_path: Path, events: list[tuple[str, dict[str, Any], str]],
          clock: Clock | None = None, **config: int) -> WarmPool:
    nodes = NodeStore(tmp_path / "state" / "nodes")

    def node_source(snapshot: Snapshot, node: str) -> str | None:
        info = snapshot.nodes[node]
        return str(nodes.materialize(info)) if info.has_source else None

    return WarmPool(runtime, runtime, PoolConfig(**config), staging_dir, node_source, clock=clock or Clock(),
                    audit_slot=lambda t, d, p: events.append((t, d, p)))


def _runner(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path, pool: WarmPool | None) -> JobRunner:
    return JobRunner(runtime, tmp_path / "state", staging_dir, environ={"POOLTEST_TOKEN": TOKEN}, pool=pool)


def _run(runner: JobRunner, snapshot: Snapshot, node: str) -> JobRecord:
    record = runner.run(snapshot, ROOT_USER, JobRequest(node=node, input=None)).record
    assert record is not None
    return record


def test_a_pooled_job_runs_in_a_warm_slot_that_is_then_gone(runtime: FakeRuntime, tmp_path: Path,
                                                            staging_dir: Path) -> None:
    """A job claims a slot of its key; the slot never waits again; its record names the slot and its digest."""
    events: list[tuple[str, dict[str, Any], str]] = []
    snapshot = _snapshot(tmp_path / "p")
    pool = _pool(runtime, staging_dir, tmp_path, events)
    pool.configure(snapshot)
    pool.tick()
    assert len(runtime.slots) == 5  # echo 2 and ad-hoc small 2 (one shape, one key), secretive 1
    record = _run(_runner(runtime, tmp_path, staging_dir, pool), snapshot, "echo")
    assert record.status == "succeeded" and record.pool["digest"] == record.policy_digest == snapshot.digest
    assert record.pool["slot"] not in runtime.slots and runtime.runs == [(runtime.runs[0][0], b"null\n")]
    name, job, sent = runtime.slot_runs[0]
    assert name == record.pool["slot"] and job.name == f"onexd-job-{record.id}"
    assert sent == f"export ONEXD_JOB_ID='{record.id}'; exec 'cat'\n".encode() + b"null\n"
    assert [e[0] for e in events].count("pool.slot.created") == 5
    pool.tick()  # audited and refilled behind
    assert ("pool.slot.removed", "job-ended") in [(t, d.get("why")) for t, d, _ in events]
    assert len(runtime.slots) == 5
    pool.stop()


def test_two_jobs_never_share_a_slot(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path) -> None:
    """Consecutive pooled jobs of one key run in different slots, and a used slot is never handed out again."""
    snapshot = _snapshot(tmp_path / "p")
    pool = _pool(runtime, staging_dir, tmp_path, [])
    pool.configure(snapshot)
    pool.tick()
    runner = _runner(runtime, tmp_path, staging_dir, pool)
    first, second = _run(runner, snapshot, "echo"), _run(runner, snapshot, "echo")
    pool.tick()
    third = _run(runner, snapshot, "echo")
    slots = [first.pool["slot"], second.pool["slot"], third.pool["slot"]]
    assert len(set(slots)) == 3 and not set(slots) & set(runtime.slots)
    pool.stop()


def test_a_miss_runs_cold_at_once(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path) -> None:
    """With no warm slot (empty pool, or a node without one) the job runs cold, without waiting, and is counted."""
    snapshot = _snapshot(tmp_path / "p")
    pool = _pool(runtime, staging_dir, tmp_path, [])
    pool.configure(snapshot)  # nothing created yet
    runner = _runner(runtime, tmp_path, staging_dir, pool)
    assert _run(runner, snapshot, "echo").pool == {} and _run(runner, snapshot, "cold").pool == {}
    assert len(runtime.runs) == 2 and runtime.slot_runs == []
    echo = next(s for s in pool.state() if "node:echo" in s["target"].split(","))
    assert (echo["misses"], echo["claims"]) == (1, 0)
    pool.stop()


def test_secrets_reach_a_slot_only_when_claimed_and_leave_with_the_job(runtime: FakeRuntime, tmp_path: Path,
                                                                       staging_dir: Path) -> None:
    """A slot's secrets directory is empty until the claim; the job sees the secret; afterwards nothing is left."""
    snapshot = _snapshot(tmp_path / "p")
    pool = _pool(runtime, staging_dir, tmp_path, [])
    pool.configure(snapshot)
    pool.tick()
    slot = next(s for s in runtime.slots.values() if dict(s.labels).get(POOL_LABEL) and
                any(m.target == SECRETS_MOUNT for m in s.mounts))
    secrets_dir = Path(next(m.source for m in slot.mounts if m.target == SECRETS_MOUNT))
    assert secrets_dir.parent == staging_dir and list(secrets_dir.iterdir()) == []
    assert TOKEN.encode() not in b"".join(line for _, _, line in runtime.slot_runs)
    record = _run(_runner(runtime, tmp_path, staging_dir, pool), snapshot, "secretive")
    assert record.pool["slot"] == slot.name
    assert runtime.seen_files[-1][f"{SECRETS_MOUNT}/token"] == TOKEN.encode()
    assert not secrets_dir.exists()
    pool.stop()


def test_a_policy_change_drains_the_old_slots_at_once(runtime: FakeRuntime, tmp_path: Path,
                                                      staging_dir: Path) -> None:
    """A reload that changes a key's shape removes its idle slots before returning; new slots carry the new digest."""
    events: list[tuple[str, dict[str, Any], str]] = []
    old = _snapshot(tmp_path / "old")
    pool = _pool(runtime, staging_dir, tmp_path, events)
    pool.configure(old)
    pool.tick()
    before = set(runtime.slots)
    new = _snapshot(tmp_path / "new", memory="128Mi")
    pool.configure(new)
    assert runtime.slots == {}
    drained = {d["slot"]: p for t, d, p in events if t == "pool.slot.removed" and d["why"] == "drained"}
    assert set(drained) == before and set(drained.values()) == {old.digest}
    pool.tick()
    assert {dict(s.labels)["onexd.policy"] for s in runtime.slots.values()} == {new.digest}
    record = _run(_runner(runtime, tmp_path, staging_dir, pool), old, "echo")  # decided on the old policy
    assert record.pool == {}  # no old slot left to claim: it runs cold
    pool.stop()


def test_an_image_rebuild_drains_its_keys(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path) -> None:
    """When the image id behind a key changes, its slots go and fresh ones come from the new image."""
    pool = _pool(runtime, staging_dir, tmp_path, [])
    pool.configure(_snapshot(tmp_path / "p"))
    pool.tick()
    before = set(runtime.slots)
    runtime.images["onexd/runner-busybox"] = ImageInfo("onexd/runner-busybox", "sha256:two", {})
    pool.tick()
    assert len(runtime.slots) == 5 and not before & set(runtime.slots)
    assert {s["image"] for s in pool.state()} == {"sha256:two"}
    pool.stop()


def test_the_host_ceiling_and_idle_age_are_kept(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path) -> None:
    """Never more idle slots than maxContainers, every key served first; slots older than maxIdleSeconds go."""
    clock = Clock()
    pool = _pool(runtime, staging_dir, tmp_path, [], clock, maxContainers=3, maxIdleSeconds=60)
    pool.configure(_snapshot(tmp_path / "p"))
    pool.tick()
    assert len(runtime.slots) == 3 and min(s["idle"] for s in pool.state()) == 1
    first = set(runtime.slots)
    clock.now += 61
    pool.tick()
    assert len(runtime.slots) == 3 and not first & set(runtime.slots)
    pool.stop()


def test_queued_jobs_hold_back_refills(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path) -> None:
    """While jobs wait in the queue the pool creates nothing: the engine serves jobs first."""
    pool = _pool(runtime, staging_dir, tmp_path, [])
    pool.jobs_waiting = lambda: 1
    pool.configure(_snapshot(tmp_path / "p"))
    pool.tick()
    assert runtime.slots == {}


def test_stop_removes_every_idle_slot(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path) -> None:
    """Stopping the pool leaves no slot and no slot directory behind."""
    pool = _pool(runtime, staging_dir, tmp_path, [])
    pool.configure(_snapshot(tmp_path / "p"))
    pool.tick()
    pool.stop()
    assert runtime.slots == {} and list(staging_dir.iterdir()) == []


def test_a_slot_is_the_translated_spec_but_for_the_job_parts(tmp_path: Path) -> None:
    """slot_spec keeps every security field of translate()'s spec; only name, command, job id and labels differ."""
    from onexd.engine.pool import pool_targets
    from onexd.engine.translate import HostPaths, translate
    snapshot = _snapshot(tmp_path / "p")
    target = next(t for t in pool_targets(snapshot) if t.name == "node:echo")
    job = translate(snapshot, target.decision, target.request, "a" * 32, HostPaths())
    slot = slot_spec(job, "onexd-slot-x", "k")
    assert slot.command == (LAUNCHER_PATH,) and "ONEXD_JOB_ID" not in dict(slot.env)
    assert dict(slot.labels)[POOL_LABEL] == "k" and "onexd.job" not in dict(slot.labels)
    assert shape_of(slot) == shape_of(job) and pool_key(slot, "i") == pool_key(job, "i")
    for field in ("image", "user", "limits", "seccomp", "network", "tmpfs", "mounts", "cap_add", "cap_drop",
                  "read_only_rootfs", "no_new_privileges", "privileged", "working_dir"):
        assert getattr(slot, field) == getattr(job, field), field


@pytest.mark.integration
@pytest.mark.parametrize("argv", [("cat",), ("sh", "-c", "echo 'it''s' \"$HOME\" `id` $(id) \\"),
                                  ("printf", "%s|", "a b", "", "'", "\\n", "*", "$ONEXD_JOB_ID"),
                                  ("sh", "-c", "echo one\n\necho 'two'\n", "x\n'\n")])
def test_the_launcher_line_execs_exactly_the_argv(argv: tuple[str, ...], tmp_path: Path) -> None:
    """The launcher's line, evaluated by a POSIX sh, runs exactly the argv with the job id exported."""
    import dataclasses

    from onexd.engine.pool import JOB_ID_ENV
    from onexd.runtime.images import LAUNCHER_SCRIPT
    from tests.runtime.test_contract import spec as contract_spec
    job = dataclasses.replace(contract_spec(command=("python3", "-c", "import os,sys; print(repr(sys.argv[1:])); "
                                                     "print(os.environ['ONEXD_JOB_ID'])", *argv)),
                              env=((JOB_ID_ENV, "j'1"),))
    line = job_line(job)
    assert line is not None
    launcher = tmp_path / "launch"
    launcher.write_text(LAUNCHER_SCRIPT)
    launcher.chmod(0o755)
    out = subprocess.run(["/bin/sh", str(launcher)], input=line + b"rest of stdin", capture_output=True,
                         check=True, env={"PATH": os.environ["PATH"]}).stdout.decode()
    assert out == f"{list(argv)!r}\nj'1\n", shlex.join(argv)


def test_newlines_travel_on_one_line_and_a_nul_takes_the_cold_path() -> None:
    """Newlines in arguments keep the launcher's line one line; a NUL (no argv can hold one) makes it a miss."""
    from tests.runtime.test_contract import spec as contract_spec
    line = job_line(contract_spec(command=("sh", "-c", "a\nb")))
    assert line is not None and line.count(b"\n") == 1 and line.endswith(b"\n")
    assert job_line(contract_spec(command=("echo", "a\0b"))) is None


def test_store_adds_the_pool_column_to_an_older_database(tmp_path: Path) -> None:
    """A job database from before the pool gets the column; its records read back as not pooled."""
    import sqlite3
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, principal TEXT NOT NULL, "
               "policy_digest TEXT NOT NULL, policy_bundles TEXT NOT NULL, created_at REAL NOT NULL, node TEXT, "
               "profile TEXT, zone TEXT, exit_code INTEGER, stdout TEXT NOT NULL DEFAULT '', stderr TEXT NOT NULL "
               "DEFAULT '', truncated INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER, started_at REAL, "
               "finished_at REAL, reason TEXT NOT NULL DEFAULT '')")
    db.execute("INSERT INTO jobs (id, status, principal, policy_digest, policy_bundles, created_at) "
               "VALUES ('a', 'succeeded', 'p', 'd', '{}', 1.0)")
    db.commit()
    db.close()
    store = JobStore(path)
    old = store.get("a")
    assert old is not None and old.pool == {}
    store.put(JobRecord(id="b", status="succeeded", principal="p", policy_digest="d", policy_bundles={},
                        created_at=2.0, pool={"slot": "onexd-slot-1", "key": "k", "digest": "d"}))
    again = store.get("b")
    assert again is not None and again.pool["slot"] == "onexd-slot-1"


def test_an_unreachable_engine_does_not_fail_configure(runtime: FakeRuntime, tmp_path: Path,
                                                       staging_dir: Path) -> None:
    """When the engine cannot be asked for an image, configure (called by every reload) wants nothing and
    raises nothing: jobs run cold until a later round finds the engine again and fills the pool."""
    from onexd.errors import RuntimeFailure

    def away(name: str) -> ImageInfo | None:
        raise RuntimeFailure("the Docker engine is unreachable")

    pool = _pool(runtime, staging_dir, tmp_path, [])
    runtime.image = away  # type: ignore[method-assign]
    pool.configure(_snapshot(tmp_path / "p"))
    assert pool.state() == []
    del runtime.image  # the engine is back: the next round wants the keys and fills them
    pool.tick()
    assert len(pool.state()) == 2 and len(runtime.slots) == 5
    pool.stop()
