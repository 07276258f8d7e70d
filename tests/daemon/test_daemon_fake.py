"""Daemon behaviour that needs no containers, on the `fake` runtime backend: limits and credentials."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest

from tests.daemon.conftest import Daemon

pytestmark = pytest.mark.integration


def test_rate_limit_answers_429_with_retry_after(daemons: Callable[..., Daemon]) -> None:
    """Past the per-principal burst, requests get 429 with Retry-After; other principals are unaffected."""
    d = daemons(backend="fake", with_testers=True,
                extra={"auth": {"rateLimit": {"requestsPerMinute": 60, "burst": 3}}})
    d.start(wait=False)  # the readiness probe itself would spend the small burst
    deadline = time.monotonic() + 30
    while not d.socket.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    codes = [d.curl("GET", "/v1/jobs")[0] for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "--unix-socket", str(d.socket),
                          "http://onexd/v1/jobs"], capture_output=True, text=True, check=False).stdout
    assert "Retry-After:" in out
    assert d.curl("GET", "/v1/jobs", uid=4242)[0] == 200


def test_bad_credentials_are_refused_never_ignored(daemons: Callable[..., Daemon]) -> None:
    """A bad bearer token or API key is a 401; the request is never treated as the Unix peer instead."""
    d = daemons(backend="fake")
    d.start()
    for header, code in (("Authorization: Bearer abc.def.ghi", "invalid-token"), ("X-API-Key: k", "invalid-api-key"),
                         ("Authorization: Basic cm9vdDp4", "invalid-credentials")):
        out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", header, "--unix-socket", str(d.socket),
                              "http://onexd/v1/health"], capture_output=True, text=True, check=False).stdout
        assert out.endswith("401") and code in out, out


def test_fake_backend_runs_jobs_through_the_whole_api(daemons: Callable[..., Daemon]) -> None:
    """With the fake runtime the API, decisions and records behave as with Docker (input echoed)."""
    d = daemons(backend="fake")
    d.start()
    code, record = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "fake"}})
    assert code == 200 and record["status"] == "succeeded" and record["stdout"] == '{"name":"fake"}\n'


def test_finding_20_state_files_are_private_under_a_wide_umask(daemons: Callable[..., Daemon]) -> None:
    """Under umask 022 and a pre-existing 0755 state directory, everything private the daemon writes (job
    database with its WAL/SHM, keys, audit trail, bundle copies, cursors) is 0600/0700 after a job ran."""
    import os
    import stat

    d = daemons(backend="fake")
    d.state_dir.mkdir(parents=True, mode=0o755)
    d.state_dir.chmod(0o755)
    old = os.umask(0o022)
    try:
        d.start()
    finally:
        os.umask(old)
    code, _ = d.curl("POST", "/v1/jobs?wait=true", {"node": "hello", "input": {"name": "x"}})
    assert code == 200
    assert stat.S_IMODE(d.state_dir.stat().st_mode) == 0o700
    assert (d.state_dir / "jobs.sqlite3-wal").exists()
    shared_by_design = {"nodes", "zones"}  # read-only code copies and proxy configs that job uids must read
    wide = []
    for dirpath, dirnames, filenames in os.walk(d.state_dir):
        rel = os.path.relpath(dirpath, d.state_dir)
        if rel.split(os.sep)[0] in shared_by_design:
            dirnames[:] = []
            continue
        for name in filenames + dirnames:
            mode = stat.S_IMODE(os.lstat(os.path.join(dirpath, name)).st_mode)
            if mode & 0o077:
                wide.append(f"{os.path.join(rel, name)} {mode:o}")
    assert wide == [], "\n".join(wide)
