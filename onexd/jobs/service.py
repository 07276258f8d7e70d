"""The job service: admission, a bounded queue, workers, records, waiting, cancelling, shutdown.

Each job keeps the snapshot it was decided on for its whole life, so a reload never changes a job in flight.
Workers run jobs on threads (the Docker SDK blocks); everything else happens on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from onexd.audit.trail import AuditLog, AuditUnavailable
from onexd.config import ConcurrencyConfig
from onexd.engine.decide import Decision
from onexd.engine.request import JobRequest
from onexd.errors import NotAccepting as NotAccepting
from onexd.errors import PermissionDenied
from onexd.errors import TooManyJobs as TooManyJobs
from onexd.identity.principal import Principal
from onexd.jobs.records import FINAL, JobRecord
from onexd.jobs.runner import Admission, JobRunner
from onexd.jobs.store import JobStore
from onexd.metrics import Metrics
from onexd.policy.snapshot import Snapshot

log = logging.getLogger("onexd.jobs")


@dataclass
class _Live:
    record: JobRecord
    cancel: threading.Event = field(default_factory=threading.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)  # complete output lines so far
    partial: dict[int, bytes] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def output(self, stream: int, chunk: bytes) -> None:
        """On the event loop: split arriving output into lines and wake followers."""
        data = self.partial.pop(stream, b"") + chunk
        *complete, rest = data.split(b"\n")
        if rest:
            self.partial[stream] = rest
        name = "stdout" if stream == 1 else "stderr"
        self.lines += [(name, line.decode(errors="replace")) for line in complete]
        self.changed.set()


class JobService:
    def __init__(self, runner: JobRunner, store: JobStore, limits: ConcurrencyConfig,
                 audit: AuditLog | None = None, metrics: Metrics | None = None) -> None:
        self.runner = runner
        self.audit = audit
        self.metrics = metrics
        self.store = store
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.maxJobs)
        self._executor = ThreadPoolExecutor(max_workers=limits.maxJobs, thread_name_prefix="onexd-job")
        self._live: dict[str, _Live] = {}
        self._accepting = True
        # Incident response: told of every job seccomp stopped (the daemon counts it toward a lockout).
        self.on_blocked_syscall: Callable[[JobRecord], Awaitable[None]] | None = None

    # --- admission -------------------------------------------------------------------------------------

    async def enqueue(self, snapshot: Snapshot, principal: Principal, request: JobRequest) -> JobRecord:
        """From a request to a queued job, all on the one snapshot given: decide (and check the input), audit
        the decision, and if allowed record and queue the job. A denial raises PermissionDenied with the
        decision's reasons; bad input raises InvalidInput."""
        admission = self.admit(snapshot, principal, request)
        decision = admission.decision
        await self._decided(snapshot, principal, decision, request)
        if not decision.allowed:
            raise PermissionDenied(f"{principal.display} may not run {request.target}",
                                   reasons=decision_reasons(decision))
        return await self.submit(snapshot, principal, request, admission)

    def admit(self, snapshot: Snapshot, principal: Principal, request: JobRequest) -> Admission:
        """Decision and checked input; raises InvalidInput. Pure CPU work: fine on the loop."""
        return self.runner.admit(snapshot, principal, request)

    async def _decided(self, snapshot: Snapshot, principal: Principal, decision: Decision,
                       request: JobRequest) -> None:
        """The execute decision, counted and durable in the trail before the caller hears of it."""
        result = "allowed" if decision.allowed else "denied"
        if self.metrics is not None:
            self.metrics.authorization.labels("nodes", "execute", result).inc()
        if self.audit is not None:
            await self.audit.aappend("authz.decision", principal.display, result, {
                "permission": "nodes:execute", "target": request.target, "capability": decision.capability,
                "reasons": [r.code for r in decision.reasons]}, snapshot.digest)

    async def _event(self, type_: str, record: JobRecord, outcome: str = "success", **data: object) -> None:
        if self.audit is not None:
            await self.audit.aappend(type_, record.principal, outcome,
                                     {"job": record.id, "node": record.node, "profile": record.profile,
                                      "zone": record.zone, **data}, record.policy_digest)

    async def submit(self, snapshot: Snapshot, principal: Principal, request: JobRequest, admission: Admission
                     ) -> JobRecord:
        """Queue an admitted job; its audit event and its record are durable before this returns."""
        if not self._accepting:
            raise NotAccepting("onexd is shutting down and accepts no new jobs")
        mine = sum(1 for j in self._live.values() if j.record.principal == principal.display)
        if mine >= self.limits.maxJobsPerPrincipal:
            raise TooManyJobs(f"{principal.display} already has {mine} jobs queued or running "
                              f"(limit {self.limits.maxJobsPerPrincipal})", retry_after_s=2)
        if len(self._live) >= self.limits.maxJobs + self.limits.maxQueued:
            raise TooManyJobs(f"the queue is full ({len(self._live)} jobs)", retry_after_s=2)
        record = self.runner.new_record(snapshot, principal, request, admission.decision)
        await self._event("job.submitted", record)  # AuditUnavailable here refuses the job (enforced mode)
        self.store.put(record)
        live = _Live(record)
        self._live[record.id] = live
        live.task = asyncio.get_running_loop().create_task(self._run(live, snapshot, admission, request))
        log.info("job queued", extra={"job": record.id, "principal": record.principal, "node": record.node,
                                      "policy": record.policy_digest})
        return record

    async def _run(self, live: _Live, snapshot: Snapshot, admission: Admission, request: JobRequest) -> None:
        try:
            async with self._slots:
                if live.cancel.is_set():
                    final = dataclasses.replace(live.record, status="cancelled", reason="cancelled while queued",
                                                finished_at=self.runner.clock())
                else:
                    live.record = dataclasses.replace(live.record, status="running", started_at=self.runner.clock())
                    self.store.put(live.record)
                    with contextlib.suppress(AuditUnavailable):  # the job was accepted; finishing it is owed
                        await self._event("job.started", live.record)
                    loop = asyncio.get_running_loop()

                    def on_output(stream: int, chunk: bytes) -> None:  # on the job's thread
                        loop.call_soon_threadsafe(live.output, stream, chunk)

                    final = await loop.run_in_executor(self._executor, self.runner.execute, snapshot, admission,
                                                       request, live.record, live.cancel, on_output)
        except Exception as exc:  # a bug must still leave a final record, never a job stuck in running
            log.exception("job failed unexpectedly", extra={"job": live.record.id})
            final = dataclasses.replace(live.record, status="error", reason=f"internal error ({type(exc).__name__})",
                                        finished_at=self.runner.clock())
        live.record = final
        self.store.put(final)
        if self.metrics is not None:
            self.metrics.job_finished(final.status, final.duration_ms / 1000 if final.duration_ms else None,
                                      final.reason)
            self.metrics.job_forensics(final.usage, final.blocked_syscall)
        with contextlib.suppress(AuditUnavailable):
            await self._event("job.finished", final, "success" if final.status == "succeeded" else "failure",
                              status=final.status, exitCode=final.exit_code, reason=final.reason,
                              **final.forensics())
        if final.blocked_syscall is not None and self.on_blocked_syscall is not None:
            with contextlib.suppress(AuditUnavailable):
                await self.on_blocked_syscall(final)
        self._live.pop(final.id, None)
        live.done.set()
        live.changed.set()
        log.info("job finished", extra={"job": final.id, "status": final.status, "exitCode": final.exit_code,
                                        "durationMs": final.duration_ms})

    # --- queries ---------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        live = self._live.get(job_id)
        return live.record if live is not None else self.store.get(job_id)

    async def wait(self, job_id: str, timeout_s: float | None = None) -> JobRecord | None:
        live = self._live.get(job_id)
        if live is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.done.wait(), timeout_s)
        return self.get(job_id)

    async def follow(self, job_id: str) -> AsyncIterator[tuple[str, str]]:
        """(stream, line) pairs of a running job as they arrive; ends when the job ends. Jobs with secrets
        stream nothing live (their output is masked as a whole): the caller reads the final record then."""
        live = self._live.get(job_id)
        if live is None:
            return
        sent = 0
        while True:
            live.changed.clear()
            while sent < len(live.lines):
                yield live.lines[sent]
                sent += 1
            if live.done.is_set():
                for stream, rest in sorted(live.partial.items()):  # a last line without a newline
                    yield ("stdout" if stream == 1 else "stderr"), rest.decode(errors="replace")
                return
            await live.changed.wait()

    def cancel(self, job_id: str) -> JobRecord | None:
        live = self._live.get(job_id)
        if live is None:
            return self.store.get(job_id)
        live.cancel.set()
        return live.record

    def counts(self) -> dict[str, int]:
        running = sum(1 for j in self._live.values() if j.record.status == "running")
        return {"running": running, "queued": len(self._live) - running}

    # --- lifecycle -------------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """At start-up: jobs a previous life left queued or running end as error (their containers are reaped)."""
        ids = self.store.fail_unfinished("onexd stopped while the job was queued or running",
                                         self.runner.clock())
        for job_id in ids:
            log.warning("job from a previous run marked error", extra={"job": job_id})
        return ids

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting; let running jobs finish within grace_s, then cancel (kill) and record the rest."""
        self._accepting = False
        pending = [j for j in self._live.values() if j.task is not None]
        if pending:
            log.info("waiting for jobs", extra={"count": len(pending), "graceSeconds": grace_s})
            _, still = await asyncio.wait([j.task for j in pending if j.task], timeout=grace_s)
            for live in list(self._live.values()):
                live.cancel.set()
            if still:
                await asyncio.wait(still, timeout=60)
        self._executor.shutdown(wait=True, cancel_futures=False)

    def is_final(self, record: JobRecord) -> bool:
        return record.status in FINAL


def decision_reasons(decision: Decision) -> list[dict[str, str]]:
    return [{"code": r.code, "message": r.message} for r in decision.reasons]
