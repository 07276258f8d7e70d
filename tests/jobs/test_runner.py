"""JobRunner with the fake runtime: input checks, code and secret staging_dir, masking, cleanup, error records."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest

from onexd.engine.request import JobRequest
from onexd.errors import RuntimeFailure
from onexd.identity.principal import parse_subject
from onexd.jobs.runner import InvalidInput, JobRunner
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.base import RunResult
from onexd.runtime.fake import FakeRuntime, echo
from onexd.spec import ContainerSpec
from tests.conftest import EXAMPLES

ROOT_USER = parse_subject("UnixUser:root")
TOKEN = "canary-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    ev = load_directory(EXAMPLES)
    assert ev.snapshot is not None
    return ev.snapshot


def _runner(runtime: FakeRuntime, tmp_path: Path, staging_dir: Path, **env: str) -> JobRunner:
    return JobRunner(runtime, tmp_path / "state", staging_dir, environ={"DEMO_SECRET_API_TOKEN": TOKEN, **env})


def test_node_job_gets_input_on_stdin_and_code_mounted(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """The input is one JSON line on stdin; the code is a read-only, content-addressed copy."""
    runtime = FakeRuntime()
    outcome = _runner(runtime, tmp_path, staging_dir).run(snapshot, ROOT_USER, JobRequest(node="hello",
                                                                                        input={"name": "x"}))
    assert outcome.record is not None and outcome.record.status == "succeeded"
    spec, stdin = runtime.runs[0]
    assert stdin == b'{"name":"x"}\n'
    code = Path(spec.mounts[0].source)
    assert code.parent == tmp_path / "state" / "nodes" and code.name == snapshot.nodes["hello"].source_digest
    assert (code / "main.py").read_bytes() == snapshot.nodes["hello"].source_files["main.py"]
    assert (code / "main.py").stat().st_mode & 0o777 == 0o444
    assert outcome.record.policy_digest == snapshot.digest


def test_code_copy_is_reused(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """Two jobs of the same node share one copy (content-addressed, created once)."""
    runtime = FakeRuntime()
    runner = _runner(runtime, tmp_path, staging_dir)
    for _ in range(2):
        runner.run(snapshot, ROOT_USER, JobRequest(node="hello", input={"name": "x"}))
    assert runtime.runs[0][0].mounts[0].source == runtime.runs[1][0].mounts[0].source
    assert len(list((tmp_path / "state" / "nodes").iterdir())) == 1


def test_invalid_input_is_refused_before_anything_runs(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """Input failing the inputSchema raises InvalidInput naming the problem; the runtime is never called."""
    runtime = FakeRuntime()
    with pytest.raises(InvalidInput) as info:
        _runner(runtime, tmp_path, staging_dir).run(snapshot, ROOT_USER, JobRequest(node="hello", input={"name": 5}))
    assert "/name" in info.value.errors[0]
    assert runtime.runs == []


def test_denied_request_runs_nothing(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """A denial returns the decision and no record."""
    runtime = FakeRuntime()
    outcome = _runner(runtime, tmp_path, staging_dir).run(snapshot, parse_subject("ApiKey:deploy-bot"),
                                                      JobRequest(node="wordcount", input={"text": "a"}))
    assert outcome.record is None and not outcome.decision.allowed and runtime.runs == []


def test_secret_is_a_0400_file_of_the_job_uid_and_masked_in_output(snapshot: Snapshot, tmp_path: Path,
                                                                    staging_dir: Path) -> None:
    """The secret is staged as /run/secrets/<name> (0400, job uid), never in env; output shows *** instead."""
    seen: dict[str, object] = {}

    def leak(spec: ContainerSpec, stdin: bytes) -> RunResult:
        secrets_dir = Path(next(m.source for m in spec.mounts if m.target == "/run/secrets"))
        st = (secrets_dir / "api-token").stat()
        seen.update(mode=st.st_mode & 0o777, uid=st.st_uid, gid=st.st_gid, dir=secrets_dir,
                    dir_mode=secrets_dir.stat().st_mode & 0o777, env=dict(spec.env))
        value = (secrets_dir / "api-token").read_bytes()
        return dataclasses.replace(echo(spec, stdin), stdout=b"token=" + value + b"\n", stderr=value[:10])

    outcome = _runner(FakeRuntime(behaviour=leak), tmp_path, staging_dir).run(
        snapshot, ROOT_USER, JobRequest(node="wordcount", input={"text": "a"}))
    assert outcome.record is not None
    assert (seen["mode"], seen["uid"], seen["gid"], seen["dir_mode"]) == (0o400, 10002, 10002, 0o500)
    assert TOKEN not in str(seen["env"])
    assert outcome.record.stdout == "token=***\n"
    assert outcome.record.stderr == "***"  # a cut-off prefix of a secret is masked too
    assert not Path(str(seen["dir"])).exists()


def test_missing_secret_is_an_error_record_without_the_value(snapshot: Snapshot, tmp_path: Path,
                                                              staging_dir: Path) -> None:
    """An unresolvable secret fails the job (status error) naming the secret; nothing runs."""
    runtime = FakeRuntime()
    runner = JobRunner(runtime, tmp_path / "state", staging_dir, environ={})
    record = runner.run(snapshot, ROOT_USER, JobRequest(node="wordcount", input={"text": "a"})).record
    assert record is not None and record.status == "error"
    assert "api-token" in record.reason and "DEMO_SECRET_API_TOKEN" in record.reason
    assert runtime.runs == []


def test_runtime_failure_becomes_an_error_record_and_cleans_up(snapshot: Snapshot, tmp_path: Path,
                                                                staging_dir: Path) -> None:
    """An engine failure is recorded as error with its message; staged secrets are still removed."""
    def boom(spec: ContainerSpec, stdin: bytes) -> RunResult:
        raise RuntimeFailure(f"engine exploded near {TOKEN}")

    record = _runner(FakeRuntime(behaviour=boom), tmp_path, staging_dir).run(
        snapshot, ROOT_USER, JobRequest(node="wordcount", input={"text": "a"})).record
    assert record is not None and record.status == "error"
    assert "engine exploded" in record.reason and TOKEN not in record.reason


def test_secret_cache_honours_the_ttl(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """Within cacheTTLSeconds the source is read once; after it, again."""
    from onexd.secrets.sources import SecretCache

    now = [1000.0]
    cache = SecretCache(clock=lambda: now[0])
    reads = []

    def read() -> bytes:
        reads.append(1)
        return b"v"

    assert cache.get("s", "k", 30, read) == b"v"
    cache.get("s", "k", 30, read)
    now[0] += 31
    cache.get("s", "k", 30, read)
    assert len(reads) == 2


def test_records_carry_the_spec_fields(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """as_dict() has every field SPEC §5 names, with ISO timestamps."""
    record = _runner(FakeRuntime(), tmp_path, staging_dir).run(snapshot, ROOT_USER,
                                                           JobRequest(node="hello", input={"name": "x"})).record
    assert record is not None
    data = record.as_dict()
    assert {"id", "status", "node", "exitCode", "stdout", "stderr", "truncated", "durationMs", "principal",
            "policy", "createdAt", "startedAt", "finishedAt"} <= set(data)
    assert data["policy"]["bundles"] == {"data-job": "1.0.0", "hello": "1.0.0"}
    assert str(data["createdAt"]).endswith("Z") and len(data["id"]) == 32
    assert hashlib.sha256(b"").hexdigest() not in data["stdout"]
    assert os.environ.get("DEMO_SECRET_API_TOKEN") is None


def _egress_snapshot(root: Path, rule: dict[str, object]) -> Snapshot:
    """The minimal policy with its profile placed in an egress zone `web` allowing one rule."""
    from tests.conftest import doc, minimal_docs, write_bundle

    docs = minimal_docs()
    docs.append(doc("NetworkZone", "web", {"mode": "egress", "egress": [rule]}))
    docs[0]["spec"]["zone"] = "web"
    docs[2]["spec"]["zones"] = ["web"]
    write_bundle(root, "b", docs)
    snapshot = load_directory(root).snapshot
    assert snapshot is not None
    return snapshot


def test_egress_zone_without_a_proxy_manager_fails_closed(tmp_path: Path, staging_dir: Path) -> None:
    """A job placed in an egress zone where no proxy can be provided ends `error`; nothing runs."""
    snapshot = _egress_snapshot(tmp_path / "p", {"host": "example.org", "ports": [443]})
    runtime = FakeRuntime()
    record = JobRunner(runtime, tmp_path / "state", staging_dir, environ={}).run(
        snapshot, ROOT_USER, JobRequest(node="echo")).record
    assert record is not None and record.status == "error" and "egress proxy" in record.reason
    assert runtime.runs == []


def test_egress_job_gets_a_proxy_and_its_environment(tmp_path: Path, staging_dir: Path) -> None:
    """With a zone manager, the zone's proxy is started first and the job's env names it."""
    from onexd.jobs.zones import EgressZones

    snapshot = _egress_snapshot(tmp_path / "p", {"cidr": "10.9.0.0/16", "ports": [80]})
    runtime = FakeRuntime()
    runtime.service_output["onexd-proxy-web"] = ['{"event": "listening"}']
    zones = EgressZones(runtime, tmp_path / "state", "egress-net")
    record = JobRunner(runtime, tmp_path / "state", staging_dir, environ={}, zones=zones).run(
        snapshot, ROOT_USER, JobRequest(node="echo")).record
    assert record is not None and record.status == "succeeded"
    spec, networks = runtime.services["onexd-proxy-web"]
    assert networks == [("onexd-zone-web", "onexd-proxy")] and spec.network.network_name == "egress-net"
    assert spec.read_only_rootfs and spec.cap_drop == ("ALL",) and spec.user == "65532:65532"
    env = dict(runtime.runs[0][0].env)
    assert env["HTTP_PROXY"] == env["https_proxy"] == "http://onexd-proxy:3128"
    config = json.loads((tmp_path / "state" / "zones" / "web" / "config.json").read_text())
    assert config["egress"] == [{"cidr": "10.9.0.0/16", "ports": [80]}]
    zones.stop()
    assert runtime.services == {}


# --- forensics: usage and the blocked system call in the record ---------------------------------------------

class _Evidence:
    """Stands in for the kernel log (a unit test of the runner's wiring; the real log is tested in Docker)."""

    def __init__(self, verdict: object) -> None:
        self.verdict = verdict
        self.asked: list[tuple[frozenset[int], bool]] = []

    def blocked_syscall(self, pids: frozenset[int], start: float, end: float, killed: bool,
                        settle_s: float = 1.0) -> object:
        self.asked.append((pids, killed))
        return self.verdict if killed else None


def _sigsys(spec: ContainerSpec, stdin: bytes) -> RunResult:
    from onexd.runtime.cgroups import Usage
    return RunResult(status="failed", exit_code=159, stdout=b"", stderr=b"", truncated=False, duration_ms=5,
                     started_at=1.0, finished_at=1.005, reason="killed by SIGSYS: a system call was refused",
                     usage=Usage(cpu_ms=1, memory_peak_bytes=4096, pids_peak=1, output_bytes=0, wall_ms=5),
                     processes=frozenset({77}))


def test_seccomp_kill_names_the_call_in_record_and_reason(snapshot: Snapshot, tmp_path: Path,
                                                          staging_dir: Path) -> None:
    """Exit 159: the runner asks the evidence with the job's pids; the name lands in blockedSyscall and reason."""
    from onexd.runtime.kmsg import BlockedSyscall
    evidence = _Evidence(BlockedSyscall(name="mkdir", number=83, arch="x86_64", action="kill_process",
                                        comm="mkdir"))
    runner = _runner(FakeRuntime(behaviour=_sigsys), tmp_path, staging_dir)
    runner.syscall_evidence = evidence  # type: ignore[assignment]
    record = runner.run(snapshot, ROOT_USER, JobRequest(node="hello", input={"name": "x"})).record
    assert record is not None and record.status == "failed"
    assert evidence.asked == [(frozenset({77}), True)]
    assert record.as_dict()["blockedSyscall"] == {"name": "mkdir", "number": 83, "arch": "x86_64",
                                                  "action": "kill_process", "comm": "mkdir"}
    assert record.reason.endswith("(mkdir)")
    assert record.as_dict()["usage"]["memoryPeakBytes"] == 4096


def test_seccomp_kill_without_evidence_is_unknown(snapshot: Snapshot, tmp_path: Path, staging_dir: Path) -> None:
    """No kernel log wired (or none readable): `unknown`, never a guessed name."""
    record = _runner(FakeRuntime(behaviour=_sigsys), tmp_path, staging_dir).run(
        snapshot, ROOT_USER, JobRequest(node="hello", input={"name": "x"})).record
    assert record is not None and record.as_dict()["blockedSyscall"] == "unknown"


def test_job_not_killed_by_seccomp_has_no_blocked_syscall(snapshot: Snapshot, tmp_path: Path,
                                                          staging_dir: Path) -> None:
    """A succeeding job: blockedSyscall is null."""
    runner = _runner(FakeRuntime(), tmp_path, staging_dir)
    runner.syscall_evidence = _Evidence("unknown")  # type: ignore[assignment]
    record = runner.run(snapshot, ROOT_USER, JobRequest(node="hello", input={"name": "x"})).record
    assert record is not None and record.status == "succeeded" and record.as_dict()["blockedSyscall"] is None


def test_kernel_log_is_read_only_for_profiles_whose_refusals_it_can_hold() -> None:
    """Kill actions or the log flag: read; the engine's default or an errno-only allowlist: nothing to read."""
    from onexd.jobs.runner import may_log_refusals

    assert not may_log_refusals(None)
    assert not may_log_refusals(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}))
    assert may_log_refusals(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]}))
    assert may_log_refusals(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}))


def test_job_service_reports_a_blocked_syscall_for_lockout(snapshot: Snapshot, tmp_path: Path,
                                                           staging_dir: Path) -> None:
    """The service hands every job seccomp stopped to its on_blocked_syscall hook (the lockout's strike)."""
    import asyncio

    from onexd.config import ConcurrencyConfig
    from onexd.jobs.records import JobRecord
    from onexd.jobs.service import JobService
    from onexd.jobs.store import JobStore

    runner = _runner(FakeRuntime(behaviour=_sigsys), tmp_path, staging_dir)
    seen: list[JobRecord] = []

    async def scenario() -> JobRecord | None:
        service = JobService(runner, JobStore(tmp_path / "jobs.sqlite3"), ConcurrencyConfig())

        async def hook(record: JobRecord) -> None:
            seen.append(record)

        service.on_blocked_syscall = hook
        request = JobRequest(node="hello", input={"name": "x"})
        admission = service.admit(snapshot, ROOT_USER, request)
        record = await service.submit(snapshot, ROOT_USER, request, admission)
        final = await service.wait(record.id, timeout_s=10)
        await service.shutdown(1)
        return final

    final = asyncio.run(scenario())
    assert final is not None and final.blocked_syscall == "unknown"
    assert [r.id for r in seen] == [final.id]
