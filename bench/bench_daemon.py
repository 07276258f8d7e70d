"""Daemon benchmark: socket submit-to-result vs the raw docker SDK, and the API's own overhead.

  socket       POST /v1/jobs?wait=true over the Unix socket, a trivial ad-hoc busybox job (`true`)
  sdk          docker SDK create/start/wait/remove of the same container (engine_request's arguments)
  api-fake     the same POST against a daemon on the `fake` runtime: decision + record + queue, no container

Targets (issue 4): socket p50 within 1.25x of sdk p50; api-fake p50 < 2 ms. Interleaved, one run, N samples
(BENCH_N, default 40). Writes bench/results/daemon.json.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import docker  # noqa: E402
from _results import interleave, publish, stats, timed  # noqa: E402

from onexd.cli.ctl import Client  # noqa: E402
from onexd.engine.decide import decide  # noqa: E402
from onexd.engine.request import JobRequest  # noqa: E402
from onexd.engine.translate import HostPaths, translate  # noqa: E402
from onexd.identity.principal import parse_subject  # noqa: E402
from onexd.policy.pipeline import load_directory  # noqa: E402
from onexd.runtime.docker import engine_request  # noqa: E402

N = int(os.environ.get("BENCH_N", "40"))
EXAMPLES = ROOT / "examples" / "policies"
JOB = {"profile": "busybox-tiny", "command": ["true"]}
STAGING = Path("/dev/shm") / f"onexd-bench-{uuid.uuid4().hex[:8]}"


def start_daemon(root: Path, backend: str, extra: dict[str, Any] | None = None,
                 prepare: Callable[[Path], None] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """A daemon on `backend` with the example policies (given to `prepare` before it starts) and a rate limit no
    benchmark reaches, plus `extra` config; its process and socket once the socket exists."""
    root.mkdir(parents=True)
    shutil.copytree(EXAMPLES, root / "policies")
    if prepare is not None:
        prepare(root / "policies")
    sock = root / "onexd.sock"
    config = {"apiVersion": "onexd/v1", "kind": "DaemonConfig", "socket": {"path": str(sock)},
              "policyDir": str(root / "policies"), "stateDir": str(root / "state"), "runtime": {"backend": backend},
              "secrets": {"stagingDir": str(STAGING / root.name)},
              "auth": {"rateLimit": {"requestsPerMinute": 600000, "burst": 100000}}, **(extra or {})}
    (root / "onexd.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "onexd"), "serve", "--config", str(root / "onexd.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ,
                                                                                        "ONEXD_LOG_LEVEL": "WARNING"})
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "daemon did not start"
        time.sleep(0.05)
    return proc, sock




def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="onexd-bench-daemon-"))
    STAGING.mkdir(mode=0o711)
    real, real_sock = start_daemon(work / "docker", "docker")
    fake, fake_sock = start_daemon(work / "fake", "fake")
    snapshot = load_directory(EXAMPLES).snapshot
    assert snapshot is not None
    request = JobRequest.model_validate(JOB)
    spec = translate(snapshot, decide(snapshot, parse_subject("UnixUser:root"), request), request, "b", HostPaths())
    args = engine_request(spec)
    api = docker.APIClient(version="auto")
    real_client, fake_client = Client(str(real_sock)), Client(str(fake_sock))

    def via_socket() -> None:
        record = real_client.call("POST", "/v1/jobs?wait=true", JOB)
        assert record["status"] == "succeeded", record

    def via_sdk() -> None:
        cid = api.create_container(**dict(args, name=f"onexd-bench-{uuid.uuid4().hex[:10]}"))["Id"]
        try:
            api.start(cid)
            api.wait(cid)
        finally:
            api.remove_container(cid, force=True)

    def via_fake() -> None:
        record = fake_client.call("POST", "/v1/jobs?wait=true", JOB)
        assert record["status"] == "succeeded", record

    variants = {"socket": via_socket, "sdk": via_sdk, "api-fake": via_fake}
    samples: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for fn in variants.values():
            fn()
        interleave(variants, N, samples)
        for _ in range(10 * N):  # the fake path is cheap: more samples for a stable p50
            samples["api-fake"].append(timed(via_fake))
        print(file=sys.stderr)
    finally:
        for proc in (real, fake):
            proc.terminate()
            proc.wait(timeout=60)
        api.close()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(STAGING, ignore_errors=True)
    results: dict[str, Any] = {k: stats(v) for k, v in samples.items()}
    results["ratios"] = {"socket_vs_sdk_p50": statistics.median(samples["socket"]) / statistics.median(samples["sdk"])}
    publish("daemon", results)


if __name__ == "__main__":
    main()
