"""The pooled path keeps the security envelope, for any valid policy and request (hypothesis).

A slot made for a job's key is translate()'s spec with only the per-job parts changed, a job may claim only a
slot whose shape equals its own, and a change to any security setting changes the key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings

from onexd.engine.pool import pool_key, pool_targets, shape_of, slot_spec
from onexd.engine.translate import HostPaths, translate
from onexd.policy.snapshot import Snapshot
from onexd.spec import LAUNCHER_PATH, POOL_LABEL, ContainerSpec, Limits
from tests.engine.test_properties import allowed_job, policies

# The generator mixes random documents on purpose: about half the drawn policies are refused, which is fine.
SLOW_AND_FILTERED = [HealthCheck.too_slow, HealthCheck.filter_too_much]
SECURITY_FIELDS = ("image", "user", "working_dir", "seccomp", "network", "tmpfs", "mounts", "cap_add", "cap_drop",
                   "read_only_rootfs", "no_new_privileges", "privileged")


def _job_spec(docs: list[dict[str, Any]], request: dict[str, Any]) -> tuple[ContainerSpec, Snapshot]:
    for d in docs:  # every node and profile asks for a warm pool
        if d["kind"] in ("Node", "SandboxProfile"):
            d["spec"]["warmPool"] = {"size": 1}
    snapshot, _, spec = allowed_job(docs, request, "f" * 32, HostPaths())
    return spec, snapshot


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=SLOW_AND_FILTERED)
@given(policies())
def test_a_slot_changes_only_the_per_job_parts(drawn: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    """slot_spec(translate(...)): every security field and every limit but the timeout as translated; the
    command is the launcher, the job id and job label are absent, the pool label names the key."""
    job, _ = _job_spec(*drawn)
    slot = slot_spec(job, "onexd-slot-x", "key")
    for name in SECURITY_FIELDS:
        assert getattr(slot, name) == getattr(job, name), name
    assert slot.limits == job.limits
    assert slot.command == (LAUNCHER_PATH,) and "ONEXD_JOB_ID" not in dict(slot.env)
    assert dict(slot.labels)[POOL_LABEL] == "key" and "onexd.job" not in dict(slot.labels)
    assert dict(slot.env) == {k: v for k, v in job.env if k != "ONEXD_JOB_ID"}
    assert shape_of(slot) == shape_of(job) and pool_key(slot, "img") == pool_key(job, "img")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=SLOW_AND_FILTERED)
@given(policies())
def test_any_security_change_changes_the_key(drawn: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    """Changing any security field, limit, image id or policy digest gives another key: no job can claim a slot
    made for a different sandbox."""
    job, _ = _job_spec(*drawn)
    key = pool_key(job, "img")
    changed: list[ContainerSpec] = [
        dataclasses.replace(job, image=job.image + "x"),
        dataclasses.replace(job, user="2:2" if job.user == "1:1" else "1:1"),
        dataclasses.replace(job, cap_add=(*job.cap_add, "KILL")), dataclasses.replace(job, read_only_rootfs=False),
        dataclasses.replace(job, privileged=True), dataclasses.replace(job, tmpfs=()) if job.tmpfs else
        dataclasses.replace(job, working_dir=job.working_dir + "x"),
        dataclasses.replace(job, labels=tuple((k, v + "x") if k == "onexd.policy" else (k, v) for k, v in job.labels)),
        *(dataclasses.replace(job, limits=dataclasses.replace(job.limits, **{f.name: getattr(job.limits, f.name) + 1}))
          for f in dataclasses.fields(Limits) if f.name != "timeout_s"),
    ]
    assert all(pool_key(c, "img") != key for c in changed)
    assert pool_key(job, "img2") != key
    assert pool_key(dataclasses.replace(job, limits=dataclasses.replace(job.limits, timeout_s=1)), "img") == key


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=SLOW_AND_FILTERED)
@given(policies())
def test_pool_targets_translate_to_what_decide_gives_a_job(drawn: tuple[list[dict[str, Any]], dict[str, Any]]
                                                         ) -> None:
    """The sandbox a pool target is warmed with equals the one decide() gives an allowed job of that target, so
    the pool's keys are the jobs' keys."""
    job, snapshot = _job_spec(*drawn)
    request = drawn[1]
    name = f"node:{request['node']}" if "node" in request else f"profile:{request['profile']}"
    target = next(t for t in pool_targets(snapshot) if t.name == name)
    warmed = translate(snapshot, target.decision, target.request, "f" * 32, HostPaths())
    assert shape_of(warmed) == shape_of(job)
