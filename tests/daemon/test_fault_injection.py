"""Fault injection (issue 12's standing suite): the state filesystem filling up, and SIGKILL in the middle of a
reload. The daemon refuses what it cannot record (503), leaves nothing half-written, and comes back whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.daemon.conftest import Daemon

ONEXD = str(Path(sys.executable).parent / "onexd")
JOB = {"node": "hello", "input": {"name": "fault"}}


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
