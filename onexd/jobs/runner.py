"""One job, start to finish: decide -> validate input -> stage code and secrets -> translate -> run -> record.

Used by `onexd run` directly and by the daemon's job service. Everything it stages is removed when the job
ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onexd.engine.decide import Decision, decide
from onexd.engine.request import JobRequest
from onexd.engine.translate import HostPaths, translate
from onexd.errors import InvalidInput as InvalidInput
from onexd.errors import RuntimeFailure
from onexd.identity.principal import Principal
from onexd.jobs.pool import WarmPool
from onexd.jobs.records import JobRecord, new_job_id
from onexd.jobs.zones import EgressZones
from onexd.policy.schema import InputValidator
from onexd.policy.snapshot import NodeInfo, Snapshot
from onexd.runtime.base import OutputSink, Runtime
from onexd.runtime.kmsg import UNKNOWN, SyscallEvidence, Verdict, killed_by_seccomp
from onexd.secrets.sources import EncryptedBackend, Reserved, SecretCache, SecretError, source_for
from onexd.secrets.staging import mask, mask_forms, staged_secrets
from onexd.spec import ContainerSpec

MAX_INPUT_BYTES = 1024 * 1024



@dataclass(frozen=True, slots=True)
class Admission:
    decision: Decision
    stdin: bytes  # the input as the job will read it (empty when denied or ad-hoc)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    decision: Decision
    record: JobRecord | None  # None when denied: nothing ran


class NodeStore:
    """Content-addressed, read-only copies of node code under STATE/nodes/<sha256>."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def materialize(self, node: NodeInfo) -> Path:
        assert node.source_digest is not None
        target = self.root / node.source_digest
        if target.is_dir():
            return target
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            for rel, data in node.source_files.items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                path.chmod(0o444)
            for dirpath, _, _ in os.walk(tmp):
                os.chmod(dirpath, 0o555)  # noqa: S103 - read-only for every job uid, by design
            try:
                tmp.rename(target)  # atomic: a concurrent job sees the whole copy or none
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            if tmp.exists():
                _force_rmtree(tmp)
        return target


def _force_rmtree(path: Path) -> None:
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)  # noqa: S103 - only to be able to delete it
    shutil.rmtree(path, ignore_errors=True)


def check_input(node: NodeInfo, value: object) -> bytes:
    """The job's stdin: its input as JSON, after checking the node's inputSchema."""
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInput([f"input is {len(data)} bytes; the limit is {MAX_INPUT_BYTES}"])
    if node.spec.inputSchema is not None:
        errors = InputValidator(node.spec.inputSchema).errors(value)
        if errors:
            raise InvalidInput(errors)
    return data


# explain translates as if for a job; nothing runs, and no host path is created.
EXPLAIN_JOB_ID = "0" * 32
EXPLAIN_PATHS = HostPaths(node_source="/nonexistent/explain/node", secrets_dir="/nonexistent/explain/secrets")


def sandbox_of(spec: ContainerSpec) -> dict[str, object]:
    """The security settings of a container spec, named as `explain` shows them."""
    return {"image": spec.image, "user": spec.user, "timeoutSeconds": spec.limits.timeout_s,
            "memoryBytes": spec.limits.memory_bytes, "pids": spec.limits.pids_limit,
            "nofile": spec.limits.nofile_limit, "outputBytes": spec.limits.output_limit_bytes,
            "readOnlyRootFilesystem": spec.read_only_rootfs, "capabilitiesAdded": list(spec.cap_add)}


def explain(snapshot: Snapshot, principal: Principal, request: JobRequest) -> dict[str, Any]:
    """The decision for a request, with its reasons and input errors (what a submission would be told): the
    one implementation behind `onexd policy explain` and POST /v1/policy/explain."""
    decision = decide(snapshot, principal, request)
    result = decision.as_dict(snapshot)
    if decision.allowed and result["sandbox"] is not None:
        # What translate() would really give the container, not a second derivation of it.
        result["sandbox"].update(sandbox_of(translate(snapshot, decision, request, EXPLAIN_JOB_ID, EXPLAIN_PATHS)))
    result["inputErrors"] = []
    if decision.allowed and request.node is not None:
        try:
            check_input(snapshot.nodes[request.node], request.input)
        except InvalidInput as exc:
            result["inputErrors"] = exc.errors
    return result


def may_log_refusals(profile_json: str | None) -> bool:
    """Whether the kernel may log what a profile refuses: it has a kill action (a child killed while the job
    goes on), or asks for SECCOMP_FILTER_FLAG_LOG. The engine's default profile (None) does neither."""
    if profile_json is None:
        return False
    profile = json.loads(profile_json)
    actions = {profile.get("defaultAction")} | {rule.get("action") for rule in profile.get("syscalls") or ()}
    return "SECCOMP_FILTER_FLAG_LOG" in (profile.get("flags") or ()) or any(
        str(a).startswith("SCMP_ACT_KILL") for a in actions)


class JobRunner:
    """Runs allowed jobs on a runtime. Collaborators come in through the constructor."""

    def __init__(self, runtime: Runtime, state_dir: Path, staging_dir: Path,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
                 secret_cache: SecretCache | None = None, release_networks: bool = False,
                 secret_store: EncryptedBackend | None = None,
                 on_secret_access: Callable[[str, str, str], object] | None = None,
                 zones: EgressZones | None = None, syscall_evidence: SyscallEvidence | None = None,
                 pool: WarmPool | None = None) -> None:
        self.runtime = runtime
        self.pool = pool
        self.nodes = NodeStore(state_dir / "nodes")
        self.staging_dir = staging_dir
        self.environ = os.environ if environ is None else environ
        # The daemon's own key material is never a secret source, whatever a policy says.
        self.reserved = Reserved.of(state_dir, self.environ)
        self.clock = clock
        self.cache = secret_cache or SecretCache()
        self.secret_store = secret_store
        self.zones = zones
        # Where blocked system calls are looked up (the kernel log); None: a SIGSYS death is `unknown`.
        self.syscall_evidence = syscall_evidence
        # (job id, secret name, source): every access is recorded by name, never by value.
        self.on_secret_access = on_secret_access or (lambda job, name, source: None)
        # One-shot runs (`onexd run`) leave no zone network behind; the daemon keeps them while zones are in use.
        self.release_networks = release_networks

    def _secret_values(self, snapshot: Snapshot, names: tuple[str, ...], job_id: str) -> dict[str, bytes]:
        values = {}
        for name in names:
            secret = snapshot.secrets[name]
            source_spec = snapshot.secret_sources[secret.source]
            self.on_secret_access(job_id, name, secret.source)
            try:
                source = source_for(source_spec, self.environ, secret.source, self.secret_store, self.reserved)
                values[name] = self.cache.get(secret.source, secret.key, source_spec.cacheTTLSeconds,
                                              functools.partial(source.read, secret.key))
            except SecretError as exc:
                raise SecretError(f"secret {name} (source {secret.source}): {exc}") from None
        return values

    @contextlib.contextmanager
    def _prepared(self, snapshot: Snapshot, decision: Decision, request: JobRequest, job_id: str
                  ) -> Iterator[tuple[HostPaths, dict[str, bytes]]]:
        assert decision.sandbox is not None
        if snapshot.zones[decision.sandbox.zone].mode == "egress":
            if self.zones is None:  # fail closed: no proxy, no egress
                raise RuntimeFailure(f"zone {decision.sandbox.zone} needs an egress proxy, which is not available "
                                     "here")
            self.zones.prepare(snapshot, decision.sandbox.zone)
        node_dir = None
        if request.node is not None and snapshot.nodes[request.node].has_source:
            node_dir = str(self.nodes.materialize(snapshot.nodes[request.node]))
        values = self._secret_values(snapshot, decision.sandbox.secrets, job_id)
        if not values:
            yield HostPaths(node_source=node_dir), {}
            return
        uid, gid = (int(x) for x in decision.sandbox.user.split(":"))
        with staged_secrets(self.staging_dir, job_id, values, uid, gid) as secrets_dir:
            yield HostPaths(node_source=node_dir, secrets_dir=str(secrets_dir)), values

    def admit(self, snapshot: Snapshot, principal: Principal, request: JobRequest) -> Admission:
        """Decide, and for an allowed node job check its input. Raises InvalidInput; a denial is a value."""
        decision = decide(snapshot, principal, request)
        if not decision.allowed or decision.sandbox is None:
            return Admission(decision, b"")
        stdin = check_input(snapshot.nodes[request.node], request.input) if request.node else b""
        return Admission(decision, stdin)

    def new_record(self, snapshot: Snapshot, principal: Principal, request: JobRequest, decision: Decision,
                   job_id: str | None = None, status: str = "queued") -> JobRecord:
        assert decision.sandbox is not None
        created = self.clock()
        return JobRecord(id=job_id or new_job_id(created), status=status, principal=principal.display,
                         policy_digest=snapshot.digest, policy_bundles=dict(snapshot.bundle_versions),
                         created_at=created, node=request.node, profile=decision.sandbox.profile,
                         zone=decision.sandbox.zone)

    def execute(self, snapshot: Snapshot, admission: Admission, request: JobRequest, base: JobRecord,
                cancel: threading.Event | None = None, on_output: OutputSink | None = None) -> JobRecord:
        """Run an admitted job on the snapshot it was decided on; always returns its final record. Live output
        goes to on_output only for jobs without secrets: masking needs the whole output."""
        decision, job_id = admission.decision, base.id
        secret_values: list[bytes] = []
        pool: dict[str, str] = {}
        try:
            with self._prepared(snapshot, decision, request, job_id) as (paths, secrets):
                secret_values = list(secrets.values())
                spec = translate(snapshot, decision, request, job_id, paths)
                try:
                    live = on_output if not secret_values else None
                    # A warm slot of exactly this spec's shape if one waits; otherwise the cold path, at once.
                    pooled = self.pool.run(spec, secrets, admission.stdin, cancel, live) if self.pool else None
                    if pooled is not None:
                        result, slot = pooled
                        pool = {"slot": slot.name, "key": slot.key, "digest": slot.digest}
                    else:
                        result = self.runtime.run(spec, admission.stdin, cancel, live)
                finally:
                    if self.release_networks and spec.network.network_name:
                        self.runtime.release_network(spec.network.network_name)
        except (RuntimeFailure, SecretError) as exc:
            # The message names what failed; it never carries a secret value (sources are written that way).
            text = str(exc)
            for value in mask_forms(secret_values):
                text = text.replace(value.decode(errors="replace"), "***")
            return dataclasses.replace(base, status="error", reason=text, finished_at=self.clock())
        killed = result.status == "failed" and killed_by_seccomp(result.exit_code)
        blocked: Verdict = UNKNOWN if killed else None
        # The kernel logs kills, and other refusals only for filters installed with the log flag: for a profile
        # with neither (the engine's default, errno-only allowlists) there is nothing to look for.
        if self.syscall_evidence is not None and (killed or may_log_refusals(spec.seccomp.profile_json)):
            blocked = self.syscall_evidence.blocked_syscall(result.processes, result.started_at,
                                                            result.finished_at, killed)
        reason = result.reason
        if killed and blocked is not None and not isinstance(blocked, str) and blocked.name:
            reason = f"{reason} ({blocked.name})"
        return dataclasses.replace(
            base, status=result.status, exit_code=result.exit_code,
            stdout=mask(result.stdout, secret_values).decode(errors="replace"),
            stderr=mask(result.stderr, secret_values).decode(errors="replace"),
            truncated=result.truncated, duration_ms=result.duration_ms, started_at=result.started_at,
            finished_at=result.finished_at, reason=reason,
            usage=result.usage.as_dict() if result.usage is not None else None,
            blocked_syscall=blocked.as_dict() if blocked is not None and not isinstance(blocked, str) else blocked,
            pool=pool)

    def run(self, snapshot: Snapshot, principal: Principal, request: JobRequest,
            cancel: threading.Event | None = None, job_id: str | None = None) -> JobOutcome:
        """One job start to finish (`onexd run`): admit, then execute. Raises InvalidInput for bad input."""
        admission = self.admit(snapshot, principal, request)
        if not admission.decision.allowed:
            return JobOutcome(admission.decision, None)
        base = self.new_record(snapshot, principal, request, admission.decision, job_id, status="running")
        return JobOutcome(admission.decision, self.execute(snapshot, admission, request, base, cancel))
