"""Issue 13.17 through the socket on the real engine: a principal's burst is queued, not refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.daemon.conftest import Daemon

pytestmark = pytest.mark.docker

SLEEP = {"profile": "busybox-tiny", "command": ["sleep", "3"]}


def test_issue_13_17_ten_jobs_at_once_are_all_queued_and_only_a_full_share_is_429(
        daemons: Callable[..., Daemon]) -> None:
    """With 2 running and 8 waiting allowed per principal, ten concurrent submissions all get 202 (two run, eight
    wait), the eleventh is 429 too-many-jobs, and all ten then succeed."""
    d = daemons(extra={"concurrency": {"maxJobs": 4, "maxQueued": 100, "maxJobsPerPrincipal": 2,
                                       "maxQueuedPerPrincipal": 8}})
    d.start()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: d.curl("POST", "/v1/jobs", SLEEP), range(10)))
    assert [code for code, _ in answers] == [202] * 10, answers
    code, refused = d.curl("POST", "/v1/jobs", SLEEP)
    assert code == 429 and refused["error"]["code"] == "too-many-jobs"
    health = d.curl("GET", "/v1/health")[1]
    assert health["jobs"]["running"] <= 2 and health["jobs"]["running"] + health["jobs"]["queued"] == 10
    deadline = time.monotonic() + 120
    ids = [record["id"] for _, record in answers]
    while True:
        statuses = [d.curl("GET", f"/v1/jobs/{job}")[1]["status"] for job in ids]
        if all(s not in ("queued", "running") for s in statuses):
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)
    assert statuses == ["succeeded"] * 10
