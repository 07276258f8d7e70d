"""Warm-pool benchmark: pooled socket submit-to-result vs the cold path and the raw docker SDK, and a burst.

  pooled       POST /v1/jobs?wait=true, a trivial ad-hoc busybox job (`true`), on a daemon whose profile has
               `warmPool: {size: 8}`
  cold         the same POST on a daemon without a pool (today's path)
  sdk          docker SDK create/start/wait/remove of the same container (engine_request's arguments)
  burst-*      8 such jobs submitted at once: on a warm pool of 8 (waited for before each burst), and cold

Targets (issue 14): pooled p50 <= 0.2x sdk p50 and <= 0.2x cold p50; the burst on a warm pool >= 3x faster than
cold. Interleaved, one run, N samples (BENCH_N, default 40) and BENCH_BURSTS bursts (default 6). Writes
bench/results/pool.json.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import docker  # noqa: E402
from _results import interleave, publish, stats  # noqa: E402
from bench_daemon import EXAMPLES, JOB, STAGING, start_daemon  # noqa: E402

from onexd.cli.ctl import Client  # noqa: E402
from onexd.engine.decide import decide  # noqa: E402
from onexd.engine.request import JobRequest  # noqa: E402
from onexd.engine.translate import HostPaths, translate  # noqa: E402
from onexd.identity.principal import parse_subject  # noqa: E402
from onexd.policy.pipeline import load_directory  # noqa: E402
from onexd.runtime.docker import engine_request  # noqa: E402

N = int(os.environ.get("BENCH_N", "40"))
BURSTS = int(os.environ.get("BENCH_BURSTS", "6"))
BURST = 8


def _start(root: Path, warm: bool) -> tuple[subprocess.Popen[bytes], Path]:
    """A daemon on Docker configured as bench_daemon's are, with room for a burst of 8 and (warm) a pool of 8 on
    the job's profile."""

    def warm_pool(policies: Path) -> None:
        path = policies / "hello" / "sandbox.yaml"
        docs = list(yaml.safe_load_all(path.read_text()))
        for d in docs:
            if d["kind"] == "SandboxProfile" and d["metadata"]["name"] == JOB["profile"]:
                d["spec"]["warmPool"] = {"size": BURST}
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    return start_daemon(root, "docker", extra={"concurrency": {"maxJobs": BURST}, "pool": {"maxContainers": BURST}},
                        prepare=warm_pool if warm else None)


def _idle(client: Client) -> int:
    return sum(k["idle"] for k in client.call("GET", "/v1/pool")["keys"])


def _wait_full(client: Client, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _idle(client) < BURST:
        assert time.monotonic() < deadline, "the pool never filled"
        time.sleep(0.05)


def _burst(sock: Path) -> float:
    """Wall time for BURST concurrent submit-to-result jobs."""
    errors: list[Any] = []

    def one() -> None:
        record = Client(str(sock)).call("POST", "/v1/jobs?wait=true", JOB)
        if record["status"] != "succeeded":
            errors.append(record)

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert not errors, errors
    return elapsed




def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="onexd-bench-pool-"))
    STAGING.mkdir(mode=0o711)
    # Each daemon reaps onexd containers at start: the cold one starts first, so nothing of the pool is reaped.
    cold_proc, cold_sock = _start(work / "cold", warm=False)
    pooled_proc, pooled_sock = _start(work / "pooled", warm=True)
    snapshot = load_directory(EXAMPLES).snapshot
    assert snapshot is not None
    request = JobRequest.model_validate(JOB)
    spec = translate(snapshot, decide(snapshot, parse_subject("UnixUser:root"), request), request, "b", HostPaths())
    args = engine_request(spec)
    api = docker.APIClient(version="auto")
    pooled, cold = Client(str(pooled_sock)), Client(str(cold_sock))
    claimed: list[bool] = []

    def via_pool() -> None:
        record = pooled.call("POST", "/v1/jobs?wait=true", JOB)
        assert record["status"] == "succeeded", record
        claimed.append(record.get("pool") is not None)

    def via_cold() -> None:
        record = cold.call("POST", "/v1/jobs?wait=true", JOB)
        assert record["status"] == "succeeded" and record.get("pool") is None, record

    def via_sdk() -> None:
        cid = api.create_container(**dict(args, name=f"onexd-bench-{uuid.uuid4().hex[:10]}"))["Id"]
        try:
            api.start(cid)
            api.wait(cid)
        finally:
            api.remove_container(cid, force=True)

    variants = {"pooled": via_pool, "cold": via_cold, "sdk": via_sdk}
    samples: dict[str, list[float]] = {k: [] for k in (*variants, "burst-pooled", "burst-cold")}
    try:
        _wait_full(pooled)
        for fn in variants.values():
            fn()
        claimed.clear()
        # Every sample starts with the pool full: the pooled job finds its slot (as between a user's calls), and
        # no refill runs beside a cold or SDK sample.
        interleave(variants, N, samples, before_each=lambda: _wait_full(pooled))
        for i in range(BURSTS):
            _wait_full(pooled)
            samples["burst-pooled"].append(_burst(pooled_sock))
            _wait_full(pooled)
            samples["burst-cold"].append(_burst(cold_sock))
            print(f"\rburst {i + 1}/{BURSTS}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        for proc in (pooled_proc, cold_proc):
            proc.terminate()
            proc.wait(timeout=60)
        api.close()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(STAGING, ignore_errors=True)
    results: dict[str, Any] = {k: stats(v) for k, v in samples.items()}
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    results["claimed"] = f"{sum(claimed)}/{len(claimed)}"
    results["ratios"] = {"pooled_vs_sdk_p50": p50["pooled"] / p50["sdk"],
                         "pooled_vs_cold_p50": p50["pooled"] / p50["cold"], "cold_vs_sdk_p50": p50["cold"] / p50["sdk"],
                         "burst_cold_over_pooled": p50["burst-cold"] / p50["burst-pooled"]}
    results["machine"] = {"cpus": os.cpu_count(), "docker": api_version()}
    publish("pool", results)


def api_version() -> str:
    client = docker.APIClient(version="auto")
    try:
        return str(client.version().get("Version"))
    finally:
        client.close()


if __name__ == "__main__":
    main()
