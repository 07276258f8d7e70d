"""KubernetesRuntime: a job's lifecycle on the cluster, through onexd.runtime.k8s_client (the only module
importing the official `kubernetes` client, where its errors become RuntimeFailure); the zone proxies are
onexd.runtime.k8s_proxies.

A job is the objects of onexd.runtime.k8s_manifests: create them (the Job suspended, then what it owns, then
resume it), attach its stdin, follow its log within the output budget, watch its pod to an end, map the end to a
job status, and always delete the Job with foreground propagation.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from onexd.engine.translate import proxy_name
from onexd.errors import RuntimeFailure
from onexd.runtime.base import ImageInfo, OutputSink, RunResult, describe_exit, status_for
from onexd.runtime.k8s_client import KubeApi, KubernetesSettings, LogReader, api_errors, read_dir
from onexd.runtime.k8s_manifests import CONTAINER, DEFAULT_DENY, Manifest, job_objects, read_only_files
from onexd.runtime.k8s_proxies import ZoneProxies
from onexd.spec import JOB_LABEL, MANAGED_LABEL, SECRETS_MOUNT, ContainerSpec

__all__ = ["KubernetesRuntime", "KubernetesSettings", "job_deadline_exceeded", "pod_end", "pod_waiting"]

# A pod waiting for one of these will not start without an operator: fail the job instead of waiting out its
# timeout.
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError", "RunContainerError"})
DEADLINE_GRACE_S = 5  # the cluster's activeDeadlineSeconds normally ends a job; onexd's own clock is the backstop
STARTUP_WAIT_S = 300  # longest a pod may stay Pending (image pull, scheduling) before the job is an error
REAP_KINDS = ("Job", "Deployment", "Service", "Secret", "ConfigMap", "NetworkPolicy")


def pod_end(pod: Manifest) -> tuple[int, bool] | None:
    """(exit code, OOM-killed) once the job container has terminated; None while it has not."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER:
            continue
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated.get("exitCode", 1)), terminated.get("reason") == "OOMKilled"
    return None


def pod_waiting(pod: Manifest) -> str | None:
    """A waiting reason that will not resolve by itself, or None."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    return None


def job_deadline_exceeded(job: Manifest) -> bool:
    return any(c.get("type") == "Failed" and c.get("reason") == "DeadlineExceeded" and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


@dataclass
class _Ending:
    """How the watch over a job's pod ended, and the log reader started on the way."""

    exit_code: int | None = None
    oom: bool = False
    timed_out: bool = False
    cancelled: bool = False
    reader: LogReader | None = None
    attached: bool = False


class KubernetesRuntime:
    """Runs ContainerSpecs as locked-down Pods of batch/v1 Jobs in one namespace."""

    def __init__(self, settings: KubernetesSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock  # onexd's own deadline (the backstop behind activeDeadlineSeconds) and start-up wait
        self.namespace = settings.namespace
        self._api = KubeApi(settings)
        self._proxies = ZoneProxies(self._api, settings.seccomp_dir)
        self._addresses: dict[str, str] = {}  # pod IP -> job id, for the proxies' refusals
        self._policy_lock = threading.Lock()

    def close(self) -> None:
        self._api.close()

    # --- the Runtime interface -----------------------------------------------------------------------------

    def ping(self) -> None:
        with api_errors(f"listing jobs in namespace {self.namespace}"):
            self._api.ping()

    def run(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None = None,
            on_output: OutputSink | None = None) -> RunResult:
        secrets_dir = next((m.source for m in spec.mounts if m.target == SECRETS_MOUNT), None)
        try:
            files = read_only_files(spec, read_dir)
            secrets = read_dir(secrets_dir) if secrets_dir is not None else None
        except OSError as exc:
            # The staged secret files belong to the job's uid (0400): the daemon's user reads them only as root
            # or with CAP_DAC_READ_SEARCH (docs/kubernetes.md). Never a value in the message: names only.
            raise RuntimeFailure(f"job {spec.name}: cannot read its staged files ({exc.strerror or exc}); the "
                                 "kubernetes backend reads them to build the ConfigMap and Secret") from None
        objects = job_objects(spec, self.namespace, files, secrets, seccomp_dir=self.settings.seccomp_dir)
        name = spec.name
        reader: LogReader | None = None
        created = False
        try:
            with self._policy_lock:
                for policy in objects.network_policies:
                    self._api.ensure(policy)
            with api_errors(f"creating Job {name}"):
                job = self._api.create(objects.job)
                created = True
                uid = job["metadata"]["uid"]
                for obj in objects.owned:
                    for ref in obj["metadata"].get("ownerReferences", []):
                        ref["uid"] = uid
                    self._api.create(obj)
                self._api.resume_job(name)
            started = time.time()
            deadline = self._clock() + spec.limits.timeout_s + DEADLINE_GRACE_S
            outcome = self._follow(spec, stdin, cancel, on_output, deadline)
            reader = outcome.reader
            finished = time.time()
            if outcome.timed_out or outcome.cancelled:
                self._api.delete_job(name)  # ends the pod, and with it the log stream
            if reader is not None:
                reader.join(5)
            exit_code = outcome.exit_code
            status = status_for(exit_code if exit_code is not None else 137, outcome.oom, outcome.timed_out,
                                outcome.cancelled)
            reason = {"timed_out": f"killed after the {spec.limits.timeout_s}s timeout", "cancelled": "cancelled",
                      "oom_killed": "killed by the OOM killer at the memory limit"}.get(
                          status, describe_exit(exit_code) if exit_code is not None else "ended")
            return RunResult(status=status, exit_code=exit_code,
                             stdout=bytes(reader.out) if reader else b"", stderr=b"",
                             truncated=bool(reader and reader.truncated),
                             duration_ms=round((finished - started) * 1000), started_at=started,
                             finished_at=finished, reason=reason)
        finally:
            if reader is not None:
                reader.close()
            if created:
                self._api.delete_job(name)
                self._api.delete_owned(objects.owned)

    def _follow(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None,
                on_output: OutputSink | None, deadline: float) -> _Ending:
        """Watch the job's pod (and its Job) to an end, in short watch windows with bounded reconnects."""
        result = _Ending()
        job_id = dict(spec.labels).get(JOB_LABEL, "")
        pending_until = self._clock() + STARTUP_WAIT_S
        pods = self._api.pod_watch(f"{JOB_LABEL}={job_id}", f"watching job {spec.name}")
        handle = functools.partial(self._on_pod, spec, stdin, on_output, deadline, job_id, result)
        while True:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                return result
            if self._clock() >= deadline:
                result.timed_out = True
                return result
            if pods.window(handle):
                return result
            if not result.attached and self._clock() > pending_until:
                raise RuntimeFailure(f"the pod of job {spec.name} did not start within {STARTUP_WAIT_S}s")
            if self._deadline_passed(spec.name):
                result.timed_out = True
                return result

    def _on_pod(self, spec: ContainerSpec, stdin: bytes, on_output: OutputSink | None, deadline: float,
                job_id: str, result: _Ending, event: str, pod: Manifest) -> bool:
        """One watch event of the job's pod: True when it ended the watch (the outcome is in result)."""
        pod_ip = (pod.get("status") or {}).get("podIP")
        if pod_ip and spec.network.mode == "egress":
            if len(self._addresses) > 10_000:
                self._addresses.clear()
            self._addresses[pod_ip] = job_id
        if event == "DELETED":
            # Deleted under us: the Job's deadline (the controller removes its pods, and may record the condition
            # a moment later) or someone else.
            past_timeout = self._clock() >= deadline - DEADLINE_GRACE_S
            result.timed_out = past_timeout or self._deadline_passed(spec.name, wait_s=2.0)
            if not result.timed_out:
                raise RuntimeFailure(f"the pod of job {spec.name} was deleted from outside onexd")
            return True
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Pending":
            fatal = pod_waiting(pod)
            if fatal is not None:
                raise RuntimeFailure(f"the pod of job {spec.name} cannot start: {fatal}")
        elif not result.attached:
            result.attached = True
            pod_name = pod["metadata"]["name"]
            if phase == "Running":
                self._api.attach(pod_name, stdin)
            result.reader = self._api.log_reader(pod_name, spec.limits.output_limit_bytes, on_output)
            result.reader.start()
        end = pod_end(pod)
        if end is not None:
            result.exit_code, result.oom = end
            return True
        return False

    def _deadline_passed(self, name: str, wait_s: float = 0.0) -> bool:
        """Whether the Job failed with DeadlineExceeded; with wait_s, keep looking that long for the condition."""
        until = time.monotonic() + wait_s
        while True:
            with api_errors(f"reading Job {name}"):
                job = self._api.read("Job", name)
            if job is None:
                return False
            if job_deadline_exceeded(job) or time.monotonic() >= until:
                return job_deadline_exceeded(job)
            time.sleep(0.2)

    def ensure_network(self, name: str, zone: str) -> None:
        """Zones are NetworkPolicies, created with each job (run()). Called before each job of an egress zone,
        right after its allowlist was written: the proxy's ConfigMap follows it."""
        self._proxies.sync(proxy_name(zone))

    def release_network(self, name: str) -> None:
        """Zone policies stay while the daemon runs: deleting one while a job of the zone starts would race, and
        the namespace's default deny keeps any pod without one isolated. reap() removes them at start."""

    # --- egress proxies: a Deployment + Service per zone (onexd.runtime.k8s_proxies) -----------------------

    def start_service(self, spec: ContainerSpec, networks: list[tuple[str, str]]) -> str:
        """The zone's proxy (ZoneProxies.start). `networks` has no meaning here: the zone's NetworkPolicy is what
        lets the zone's Pods reach it."""
        return self._proxies.start(spec)

    def service_running(self, name: str) -> bool:
        return self._proxies.running(name)

    def service_logs(self, name: str, since: float) -> list[str]:
        return self._proxies.logs(name, since)

    def remove_service(self, name: str) -> None:
        self._proxies.remove(name)

    def job_for_address(self, address: str) -> str | None:
        """The job whose Pod had this IP (seen while it ran): the proxy's refusals name their client by IP."""
        return self._addresses.get(address)

    def reap(self) -> list[str]:
        """Delete every onexd-managed Job (foreground), Deployment, Service, Secret, ConfigMap and NetworkPolicy of
        the namespace (but the default deny: it stays, so nothing opens while onexd is down)."""
        removed: list[str] = []
        with api_errors(f"reaping onexd objects in namespace {self.namespace}"):
            for kind in REAP_KINDS:
                for item in self._api.items(kind, f"{MANAGED_LABEL}=true"):
                    name = item["metadata"]["name"]
                    if kind == "Job":
                        self._api.delete_job(name)
                    elif kind != "NetworkPolicy" or name != DEFAULT_DENY:  # the default deny stays: fail closed
                        self._api.delete_quietly(kind, name)
                    removed.append(f"{kind.lower()}/{name}")
        return removed

    def image(self, name: str) -> ImageInfo | None:
        """Images live in the cluster's registry, not here: onexd cannot see them (a missing one fails the pod
        with ErrImagePull, which run() reports)."""
        return ImageInfo(name=name, image_id="", labels={})

    def import_image(self, tarball: str, name: str, labels: dict[str, str], changes: list[str]) -> ImageInfo:
        raise RuntimeFailure("the kubernetes backend does not build images: build them with `onexd image build` "
                             "on a Docker host and push them to the cluster's registry")
