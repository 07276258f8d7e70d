"""Fault injection (issue 12's standing suite): the engine stopped mid-job, the state filesystem filling up, and
SIGKILL in the middle of a reload. The daemon refuses what it cannot record (503), leaves nothing half-written,
and comes back whole."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.daemon.conftest import Daemon

ONEXD = str(Path(sys.executable).parent / "onexd")
JOB = {"node": "hello", "input": {"name": "fault"}}


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root only)")
def test_state_filesystem_full_is_503_and_nothing_half_written(daemons: Callable[..., Daemon]) -> None:
    """With the state directory on a 4 MiB tmpfs filled up, submissions are refused with 503 (never a 500 or a
    job that is not recorded), the daemon stays healthy, and once space returns jobs run again and both the
    daemon's and the offline audit verification pass (no torn record was left in the chain)."""
    d = daemons(backend="fake")
    d.state_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(d.state_dir)], check=True)
    try:
        d.start()
        assert d.curl("POST", "/v1/jobs?wait=true", JOB)[0] == 200
        filler = d.state_dir / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
        answers = [d.curl("POST", "/v1/jobs?wait=true", JOB) for _ in range(4)]
        assert all(code == 503 for code, _ in answers), answers
        assert {a["error"]["code"] for _, a in answers} <= {"state-unavailable", "audit-unavailable"}
        assert d.curl("GET", "/v1/health")[0] == 200
        filler.unlink()
        code, record = d.curl("POST", "/v1/jobs?wait=true", JOB)
        assert code == 200 and record["status"] == "succeeded"
        assert d.curl("GET", f"/v1/jobs/{record['id']}")[0] == 200
        code, verdict = d.curl("GET", "/v1/audit/verify")
        assert code == 200 and verdict["ok"], verdict
        assert d.stop() == 0
        offline = subprocess.run([ONEXD, "audit", "verify", "--state-dir", str(d.state_dir)], capture_output=True,
                                 text=True, check=False)
        assert offline.returncode == 0, offline.stdout + offline.stderr
    finally:
        if d.proc is not None:
            d.stop()
        subprocess.run(["umount", str(d.state_dir)], check=False)


@pytest.mark.integration
def test_sigkill_during_reload_restarts_on_a_consistent_state(daemons: Callable[..., Daemon]) -> None:
    """SIGKILL at several points of a reload that activates a new bundle version: every restart comes up,
    with every bundle active (none lost or half-applied, no rejection), jobs run, and the audit chain verifies."""
    d = daemons(backend="fake")
    d.start()
    for attempt, delay in enumerate((0.0, 0.005, 0.02, 0.05, 0.1)):
        manifest = yaml.safe_load((d.policy_dir / "hello" / "bundle.yaml").read_text())
        version = f"1.{attempt + 1}.0"
        manifest["spec"]["version"] = version
        d.set_policy("hello", "bundle.yaml", yaml.safe_dump(manifest))
        reload = subprocess.Popen(["curl", "-s", "-X", "POST", "--unix-socket", str(d.socket),
                                   "http://onexd/v1/policy/reload"], stdout=subprocess.DEVNULL)
        time.sleep(delay)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
        d.proc = None
        reload.wait(timeout=10)
        d.start()
        code, status = d.curl("GET", "/v1/policy")
        assert code == 200 and status["rejections"] == [] and not status["degraded"], status
        assert {b["name"]: b["version"] for b in status["bundles"]}["hello"] == version
        assert d.curl("POST", "/v1/jobs?wait=true", JOB)[0] == 200
        code, verdict = d.curl("GET", "/v1/audit/verify")
        assert code == 200 and verdict["ok"], (attempt, verdict)


class PrivateEngine:
    """A dockerd of this test's own (own data root, exec root, socket; no bridge, no iptables), so stopping the
    engine mid-job disturbs nothing but this test. It holds a copy of the busybox runner image."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            ["/usr/sbin/dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "-H", self.host, "--pidfile", str(self.root / "docker.pid"), "--bridge=none", "--iptables=false",
             "--ip6tables=false"], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        while not self.answers():
            assert self.proc.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the private dockerd did not come up"
            time.sleep(0.2)

    def answers(self) -> bool:
        return subprocess.run(["docker", "-H", self.host, "version"], capture_output=True, check=False,
                              timeout=30).returncode == 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    def docker(self, *args: str) -> str:
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, check=True,
                              timeout=120).stdout


@pytest.fixture
def private_engine() -> Iterator[PrivateEngine]:
    root = Path(tempfile.mkdtemp(prefix="onexd-engine-"))  # short: the socket path must fit sun_path
    engine = PrivateEngine(root)
    engine.start()
    try:
        saved = subprocess.run(["docker", "save", "onexd/runner-busybox"], capture_output=True, check=True,
                               timeout=120).stdout
        subprocess.run(["docker", "-H", engine.host, "load"], input=saved, capture_output=True, check=True,
                       timeout=120)
        yield engine
    finally:
        if engine.proc is None:
            engine.start()
        for cid in engine.docker("ps", "-aq").split():
            engine.docker("rm", "-f", cid)
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(what: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


@pytest.mark.docker
def test_engine_stopped_mid_job(daemons: Callable[..., Daemon], private_engine: PrivateEngine) -> None:
    """dockerd stops while a job runs: the job ends `error`, the daemon stays up and reports `degraded` with the
    engine unreachable; when the engine is back it reports ok again and runs jobs; no container is left."""
    d = daemons(extra={"runtime": {"dockerHost": private_engine.host}})
    d.start()
    code, job = d.curl("POST", "/v1/jobs", {"profile": "busybox-tiny", "command": ["sleep", "60"]})
    assert code == 202, job
    _wait_for(lambda: d.curl("GET", f"/v1/jobs/{job['id']}")[1]["status"] == "running", 30, "job never ran")
    private_engine.stop()
    _wait_for(lambda: d.curl("GET", f"/v1/jobs/{job['id']}")[1]["status"] not in ("queued", "running"), 60,
              "the job did not end")
    assert d.curl("GET", f"/v1/jobs/{job['id']}")[1]["status"] == "error"
    _wait_for(lambda: d.curl("GET", "/v1/health")[1]["status"] == "degraded", 30, "health never degraded")
    assert d.curl("GET", "/v1/health")[1]["engine"] == "unreachable"
    assert d.curl("GET", "/version")[0] == 200
    private_engine.start()
    _wait_for(lambda: d.curl("GET", "/v1/health")[1]["status"] == "ok", 30, "health never recovered")
    code, record = d.curl("POST", "/v1/jobs?wait=true", {"profile": "busybox-tiny", "command": ["true"]})
    assert code == 200 and record["status"] == "succeeded", record
    assert private_engine.docker("ps", "-aq").split() == []
