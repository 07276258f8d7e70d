"""The warm pool in a running daemon on Docker: pooled jobs over the API, onexctl pool list, stop and start."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from onexd.runtime.docker import DockerRuntime
from onexd.runtime.images import build_images
from onexd.spec import POOL_LABEL
from tests.daemon.conftest import Daemon

pytestmark = pytest.mark.docker
ONEXCTL = str(Path(sys.executable).parent / "onexctl")
JOB = {"profile": "busybox-tiny", "command": ["sh", "-c", "echo $ONEXD_JOB_ID\necho x > /tmp/mark"]}


def _slots() -> list[dict[str, Any]]:
    client = docker.APIClient(version="auto")
    try:
        return list(client.containers(all=True, filters={"label": POOL_LABEL}))
    finally:
        client.close()


def _warm(d: Daemon, size: int) -> None:
    path = d.policy_dir / "hello" / "sandbox.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        if doc["kind"] == "SandboxProfile" and doc["metadata"]["name"] == "busybox-tiny":
            doc["spec"]["warmPool"] = {"size": size}
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _wait_idle(d: Daemon, count: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, body = d.curl("GET", "/v1/pool")
        assert code == 200, body
        if sum(k["idle"] for k in body["keys"]) >= count:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_pooled_jobs_over_the_api_and_a_clean_stop_and_start(daemons: Callable[..., Daemon]) -> None:
    """Jobs claim warm slots (record names slot and digest), onexctl lists the pool, health shows it, and a stop
    and a start leave no slot of the old life behind."""
    runtime = DockerRuntime()
    build_images(runtime, only=["onexd/runner-busybox"])  # the launcher, should another build have dropped it
    runtime.close()
    d = daemons(backend="docker", extra={"pool": {"maxContainers": 2}})
    _warm(d, 2)
    d.start()
    _wait_idle(d, 2)
    code, first = d.curl("POST", "/v1/jobs?wait=true", JOB)
    assert code == 200 and first["status"] == "succeeded", first
    assert first["pool"]["digest"] == first["policy"]["digest"] and first["stdout"] == first["id"] + "\n"
    _wait_idle(d, 2)
    code, second = d.curl("POST", "/v1/jobs?wait=true", JOB)
    assert second["pool"]["slot"] != first["pool"]["slot"]
    code, health = d.curl("GET", "/v1/health")
    assert health["pool"]["enabled"] is True and health["pool"]["wanted"] == 2
    listing = subprocess.run([ONEXCTL, "--socket", str(d.socket), "-o", "json", "pool", "list"], capture_output=True,
                             text=True, check=True).stdout
    keys = yaml.safe_load(listing)["keys"]
    assert keys[0]["target"] == "profile:busybox-tiny" and keys[0]["claims"] == 2
    _wait_idle(d, 2)
    old = {c["Id"] for c in _slots()}
    assert len(old) == 2
    assert d.stop() == 0
    assert _slots() == []
    d.start()
    _wait_idle(d, 2)
    assert not old & {c["Id"] for c in _slots()}
    code, third = d.curl("POST", "/v1/jobs?wait=true", JOB)
    assert third["status"] == "succeeded" and third["pool"]["slot"] not in {first["pool"]["slot"],
                                                                             second["pool"]["slot"]}


def test_a_reload_drains_a_pooled_profile_within_5s_and_metrics_count(daemons: Callable[..., Daemon]) -> None:
    """A policy reload that changes the pooled profile leaves no slot of the old digest after 5 s; the next job
    runs in a slot of the new digest; the pool metrics count claims per target."""
    runtime = DockerRuntime()
    build_images(runtime, only=["onexd/runner-busybox"])
    runtime.close()
    d = daemons(backend="docker", extra={"pool": {"maxContainers": 2}})
    _warm(d, 2)
    d.start()
    old_keys = {k["key"] for k in _wait_idle(d, 2)["keys"]}
    code, first = d.curl("POST", "/v1/jobs?wait=true", JOB)
    assert first["pool"] and first["pool"]["key"] in old_keys
    path = d.policy_dir / "hello" / "sandbox.yaml"
    path.write_text(path.read_text().replace("memory: 32Mi", "memory: 48Mi", 1))
    d.bump("hello", "1.0.1")
    started = time.monotonic()
    code, reloaded = d.curl("POST", "/v1/policy/reload", {})
    assert code == 200, reloaded
    while any(c["Labels"].get(POOL_LABEL) in old_keys for c in _slots()):
        assert time.monotonic() - started < 5, "slots of the old policy still exist 5 s after the reload"
        time.sleep(0.05)
    new_keys = {k["key"] for k in _wait_idle(d, 2)["keys"]}
    code, second = d.curl("POST", "/v1/jobs?wait=true", JOB)
    assert second["pool"]["key"] in new_keys and not new_keys & old_keys
    assert second["pool"]["digest"] == second["policy"]["digest"] != first["policy"]["digest"]
    code, metrics = d.curl("GET", "/metrics")
    assert code == 200 and 'onexd_pool_claims{target="profile:busybox-tiny"} 1.0' in str(metrics)
