"""JobService: one call from request to queued job — decide, audit the decision, record, queue."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from onexd.audit.events import problems_of
from onexd.audit.trail import AuditLog
from onexd.config import ConcurrencyConfig
from onexd.engine.request import JobRequest
from onexd.errors import InvalidInput, NotAccepting, PermissionDenied, TooManyJobs
from onexd.identity.principal import parse_subject
from onexd.jobs.runner import JobRunner
from onexd.jobs.service import JobService
from onexd.jobs.store import JobStore
from onexd.metrics import Metrics
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.base import RunResult
from onexd.runtime.fake import FakeRuntime, echo
from onexd.spec import ContainerSpec
from tests.conftest import EXAMPLES

ROOT = parse_subject("UnixUser:root")
HELLO = JobRequest(node="hello", input={"name": "x"})


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    ev = load_directory(EXAMPLES)
    assert ev.snapshot is not None
    return ev.snapshot


def _service(tmp_path: Path, staging_dir: Path, **limits: int) -> tuple[JobService, AuditLog, FakeRuntime]:
    runtime = FakeRuntime()
    audit = AuditLog(tmp_path / "audit")
    runner = JobRunner(runtime, tmp_path / "state", staging_dir, environ={})
    service = JobService(runner, JobStore(tmp_path / "jobs.sqlite3"), ConcurrencyConfig(**limits), audit=audit,
                         metrics=Metrics())
    return service, audit, runtime


def test_an_allowed_request_is_audited_recorded_queued_and_run(snapshot: Snapshot, tmp_path: Path,
                                                               staging_dir: Path) -> None:
    """The decision event precedes job.submitted; the record is stored at once and the job then succeeds."""
    service, audit, runtime = _service(tmp_path, staging_dir)

    async def go() -> str:
        record = await service.enqueue(snapshot, ROOT, HELLO)
        assert service.store.get(record.id) is not None
        final = await service.wait(record.id)
        assert final is not None
        await service.shutdown(1)
        return final.status

    assert asyncio.run(go()) == "succeeded" and len(runtime.runs) == 1
    events = audit.read()
    types = [e["type"] for e in events]
    assert types[:2] == ["authz.decision", "job.submitted"] and "job.finished" in types
    assert events[0]["outcome"] == "allowed" and events[0]["policy"] == snapshot.digest
    assert [p for e in events for p in problems_of(e)] == []
    audit.close()


def test_a_denied_request_is_audited_and_raises_with_reasons(snapshot: Snapshot, tmp_path: Path,
                                                             staging_dir: Path) -> None:
    """A caller without a binding gets PermissionDenied with the decision's reasons; nothing is recorded."""
    service, audit, runtime = _service(tmp_path, staging_dir)
    stranger = parse_subject("UnixUser:65534")
    with pytest.raises(PermissionDenied) as info:
        asyncio.run(service.enqueue(snapshot, stranger, HELLO))
    assert info.value.reasons and info.value.reasons[0]["code"] == "no-binding"
    assert [e["outcome"] for e in audit.read()] == ["denied"] and runtime.runs == []
    assert service.store.count() == 0
    audit.close()


def test_invalid_input_is_refused_before_anything_is_recorded(snapshot: Snapshot, tmp_path: Path,
                                                              staging_dir: Path) -> None:
    """Input failing the node's inputSchema raises InvalidInput; no decision or job is written."""
    service, audit, _ = _service(tmp_path, staging_dir)
    with pytest.raises(InvalidInput):
        asyncio.run(service.enqueue(snapshot, ROOT, JobRequest(node="hello", input={"name": ""})))
    assert audit.read() == [] and service.store.count() == 0
    audit.close()


def test_limits_and_shutdown_refuse_new_jobs(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """Past the per-principal limit a request is TooManyJobs; after shutdown it is NotAccepting."""
    service, audit, _ = _service(tmp_path, staging_dir, maxJobs=1, maxJobsPerPrincipal=1, maxQueuedPerPrincipal=0)

    async def go() -> None:
        await service.enqueue(snapshot, ROOT, HELLO)
        with pytest.raises(TooManyJobs):
            await service.enqueue(snapshot, ROOT, HELLO)
        await service.shutdown(5)
        with pytest.raises(NotAccepting):
            await service.enqueue(snapshot, ROOT, HELLO)

    asyncio.run(go())
    audit.close()


def test_issue_13_a_ci_submitting_ten_at_once_gets_all_ten_queued(snapshot: Snapshot, tmp_path: Path,
                                                                   staging_dir: Path) -> None:
    """With the default limits ten jobs of one principal are all accepted: at most maxJobsPerPrincipal run at
    once, the rest wait; only past the per-principal queue depth is a job refused (429)."""
    defaults = ConcurrencyConfig()
    assert defaults.maxJobsPerPrincipal == 8 and defaults.maxQueuedPerPrincipal == 64
    service, audit, runtime = _service(tmp_path, staging_dir, maxJobs=16, maxJobsPerPrincipal=2,
                                       maxQueuedPerPrincipal=8)
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()
    peak = [0]

    def blocking(spec: ContainerSpec, stdin: bytes) -> RunResult:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        release.wait(30)
        with lock:
            running.pop()
        return echo(spec, stdin)

    runtime.behaviour = blocking

    async def go() -> list[str]:
        records = [await service.enqueue(snapshot, ROOT, HELLO) for _ in range(10)]
        with pytest.raises(TooManyJobs, match="2 running and 8 waiting"):
            await service.enqueue(snapshot, ROOT, HELLO)
        for _ in range(3000):  # until the workers have taken what they may (two), bounded
            if len(running) == 2:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)  # a third would have started by now if the per-principal cap leaked
        assert service.counts() == {"running": 2, "queued": 8}
        release.set()
        finals = [await service.wait(r.id) for r in records]
        await service.shutdown(5)
        return [f.status for f in finals if f is not None]

    assert asyncio.run(go()) == ["succeeded"] * 10
    assert peak[0] == 2
    audit.close()
