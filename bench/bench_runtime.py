"""Runtime benchmark: a trivial job through onexd vs raw Docker, measured in one run, same container flags.

  docker-cli   `docker run --rm` with the same security flags (a new CLI process each time)
  sdk          docker SDK create/start/wait/remove with engine_request()'s exact arguments
  onexd        JobRunner.run in-process: decide, input check, code copy, translate, attach, run, record
  onexd-cli    `onexd run` as a user types it (includes the Python interpreter's start-up)

onexd's own overhead is onexd - sdk (everything but the engine's work); the issue's target is < 10% of sdk.
Run: `make bench-runtime` (N=30 by default; BENCH_N to change). Writes bench/results/runtime.json.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import docker  # noqa: E402
from _results import interleave, publish, stats  # noqa: E402

from onexd.engine.decide import decide  # noqa: E402
from onexd.engine.request import JobRequest  # noqa: E402
from onexd.engine.translate import HostPaths, translate  # noqa: E402
from onexd.identity.principal import parse_subject  # noqa: E402
from onexd.jobs.runner import JobRunner  # noqa: E402
from onexd.policy.pipeline import load_directory  # noqa: E402
from onexd.runtime.docker import DockerRuntime, engine_request  # noqa: E402

N = int(os.environ.get("BENCH_N", "30"))
EXAMPLES = ROOT / "examples" / "policies"
ONEXD = str(Path(sys.executable).parent / "onexd")
DOCKER = shutil.which("docker") or "/usr/bin/docker"






def main() -> None:
    snapshot = load_directory(EXAMPLES).snapshot
    assert snapshot is not None
    root = parse_subject("UnixUser:root")
    # The trivial node: busybox `true` under the busybox-tiny profile (ad-hoc: no code, no secrets).
    request = JobRequest(profile="busybox-tiny", command=("true",))
    decision = decide(snapshot, root, request)
    spec = translate(snapshot, decision, request, "bench", HostPaths())
    args = engine_request(spec)
    hc = args["host_config"]
    cli_flags = ["--rm", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                 "--memory", str(hc["Memory"]), "--memory-swap", str(hc["MemorySwap"]),
                 "--cpus", str(hc["NanoCpus"] / 1e9), "--cpu-shares", str(hc["CpuShares"]),
                 "--pids-limit", str(hc["PidsLimit"]), "--ulimit", f"nofile={spec.limits.nofile_limit}",
                 "--network", "none", "--user", spec.user, "--log-driver", "none", "--ipc", "private",
                 *[x for t in spec.tmpfs for x in ("--tmpfs", f"{t.target}:{t.options}")],
                 "--entrypoint", "true", spec.image]
    api = docker.APIClient(version="auto")
    runtime = DockerRuntime()
    staging = Path("/dev/shm") / f"onexd-bench-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o711)
    state = Path(tempfile.mkdtemp(prefix="onexd-bench-state-"))
    runner = JobRunner(runtime, state, staging, environ={})

    def raw_cli() -> None:
        subprocess.run([DOCKER, "run", *cli_flags], check=True, capture_output=True)

    def raw_sdk() -> None:
        body = dict(args, name=f"onexd-bench-{uuid.uuid4().hex[:10]}")
        cid = api.create_container(**body)["Id"]
        try:
            api.start(cid)
            api.wait(cid)
        finally:
            api.remove_container(cid, force=True)

    def onexd_inproc() -> None:
        record = runner.run(snapshot, root, request).record
        assert record is not None and record.status == "succeeded", record

    def onexd_cli() -> None:
        subprocess.run([ONEXD, "run", "--policy-dir", str(EXAMPLES), "--state-dir", str(state), "--staging-dir",
                        str(staging), "--profile", "busybox-tiny", "--", "true"], check=True, capture_output=True)

    variants = {"docker-cli": raw_cli, "sdk": raw_sdk, "onexd": onexd_inproc, "onexd-cli": onexd_cli}
    samples: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for fn in variants.values():  # warm-up: page cache, image layers, imports
            fn()
        interleave(variants, N, samples)
        print(file=sys.stderr)
    finally:
        api.close()
        runtime.close()
        shutil.rmtree(state, ignore_errors=True)
        staging.rmdir()
    results: dict[str, object] = {k: stats(v) for k, v in samples.items()}
    sdk, ours = statistics.median(samples["sdk"]), statistics.median(samples["onexd"])
    results["ratios"] = {
        "onexd_vs_sdk_p50": ours / sdk,
        "onexd_vs_docker_cli_p50": ours / statistics.median(samples["docker-cli"]),
        "onexd_cli_vs_docker_cli_p50": statistics.median(samples["onexd-cli"])
        / statistics.median(samples["docker-cli"]),
        "onexd_overhead_ms_p50": (ours - sdk) * 1000,
        "onexd_overhead_pct_of_sdk": (ours - sdk) / sdk * 100,
    }
    publish("runtime", results)


if __name__ == "__main__":
    main()
