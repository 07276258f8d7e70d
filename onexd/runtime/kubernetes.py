"""KubernetesRuntime: the only module importing the official `kubernetes` client. API errors become
RuntimeFailure here.

A job is the objects of onexd.runtime.k8s_manifests: create them (the Job suspended, then what it owns, then
resume it), attach its stdin, follow its log within the output budget, watch its pod to an end, map the end to a
job status, and always delete the Job with foreground propagation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream

from onexd.engine.translate import proxy_name
from onexd.errors import RuntimeFailure
from onexd.runtime.base import ImageInfo, OutputSink, RunResult, describe_exit, status_for
from onexd.runtime.k8s_manifests import (
    CONTAINER,
    DEFAULT_DENY,
    ROLE_LABEL,
    ZONE_LABEL,
    Manifest,
    job_objects,
    proxy_objects,
    read_only_files,
)
from onexd.spec import JOB_LABEL, MANAGED_LABEL, SECRETS_MOUNT, ContainerSpec

log = logging.getLogger("onexd.kubernetes")

# A pod waiting for one of these will not start without an operator: fail the job instead of waiting out its
# timeout.
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError", "RunContainerError"})
WATCH_WINDOW_S = 1  # each watch request ends after this long: cancellation and deadlines are checked between
MAX_RECONNECTS = 5  # consecutive failed watch requests before the job is an error
DEADLINE_GRACE_S = 5  # the cluster's activeDeadlineSeconds normally ends a job; onexd's own clock is the backstop
STARTUP_WAIT_S = 300  # longest a pod may stay Pending (image pull, scheduling) before the job is an error


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    namespace: str
    kubeconfig: str | None = None  # None with in_cluster False: the client's default (~/.kube/config)
    in_cluster: bool = False
    context: str | None = None
    seccomp_dir: str = "onexd"
    request_timeout_s: float = 30.0


@contextlib.contextmanager
def _api_errors(action: str) -> Iterator[None]:
    """Every failure of the client, as RuntimeFailure naming what onexd was doing."""
    try:
        yield
    except ApiException as exc:
        raise RuntimeFailure(f"{action}: the Kubernetes API answered {exc.status} {_reason(exc)}") from None
    except (urllib3.exceptions.HTTPError, OSError, ConfigException) as exc:
        raise RuntimeFailure(f"{action}: the Kubernetes API is unreachable ({type(exc).__name__}: {exc})") from None


def _reason(exc: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError):
        body = json.loads(exc.body or "")
        return f"{body.get('reason', '')}: {body.get('message', '')}".strip(": ")
    return str(exc.reason or "")


def _read_dir(path: str) -> dict[str, bytes]:
    """Every file under path by relative name. Raises OSError for anything it cannot read: a directory walk
    that skipped an unreadable entry would ship a job without its code or secrets."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(2, "No such directory", path)
    files: dict[str, bytes] = {}

    def fail(exc: OSError) -> None:
        raise exc

    for dirpath, _, names in os.walk(root, onerror=fail):
        for name in names:
            file = Path(dirpath) / name
            files[str(file.relative_to(root))] = file.read_bytes()
    return dict(sorted(files.items()))


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


class _LogReader(threading.Thread):
    """Follows the pod's log, keeping at most `limit` bytes; Kubernetes asks the kubelet for limit+1 bytes only,
    so a flood is cut on the node, not here."""

    def __init__(self, core: Any, namespace: str, pod: str, limit: int, on_output: OutputSink | None) -> None:
        super().__init__(name="onexd-k8s-log", daemon=True)
        self.core, self.namespace, self.pod, self.limit, self.on_output = core, namespace, pod, limit, on_output
        self.out = bytearray()
        self.truncated = False
        self.error: str | None = None
        self._response: Any = None

    def run(self) -> None:
        try:
            self._response = self.core.read_namespaced_pod_log(
                self.pod, self.namespace, container=CONTAINER, follow=True, limit_bytes=self.limit + 1,
                _preload_content=False)
            for chunk in self._response.stream(65536):
                room = self.limit - len(self.out)
                if len(chunk) > room:
                    self.truncated = True
                    chunk = chunk[:max(room, 0)]
                if chunk:
                    self.out += chunk
                    if self.on_output is not None:
                        self.on_output(1, chunk)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if self._response is not None:
                with contextlib.suppress(Exception):
                    self._response.release_conn()

    def close(self) -> None:
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()


@dataclass
class _Ending:
    """How the watch over a job's pod ended, and the log reader started on the way."""

    exit_code: int | None = None
    oom: bool = False
    timed_out: bool = False
    cancelled: bool = False
    reader: _LogReader | None = None


class KubernetesRuntime:
    """Runs ContainerSpecs as locked-down Pods of batch/v1 Jobs in one namespace."""

    def __init__(self, settings: KubernetesSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock  # onexd's own deadline (the backstop behind activeDeadlineSeconds) and start-up wait
        self.namespace = settings.namespace
        configuration = client.Configuration()
        with _api_errors("loading the Kubernetes client configuration"):
            if settings.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(config_file=settings.kubeconfig, context=settings.context,
                                        client_configuration=configuration)
        self._client = client.ApiClient(configuration)
        self._batch = client.BatchV1Api(self._client)
        self._core = client.CoreV1Api(self._client)
        self._net = client.NetworkingV1Api(self._client)
        self._apps = client.AppsV1Api(self._client)
        self._services: dict[str, ContainerSpec] = {}
        self._addresses: dict[str, str] = {}  # pod IP -> job id, for the proxies' refusals
        self._timeout = settings.request_timeout_s
        self._policy_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    # --- helpers ---------------------------------------------------------------------------------------

    def _json(self, response: Any) -> Manifest:
        data: Manifest = json.loads(response.data)
        return data

    def _create(self, obj: Manifest) -> Manifest:
        kind, ns = obj["kind"], self.namespace
        creators = {"Job": self._batch.create_namespaced_job, "Secret": self._core.create_namespaced_secret,
                    "ConfigMap": self._core.create_namespaced_config_map,
                    "NetworkPolicy": self._net.create_namespaced_network_policy}
        return self._json(creators[kind](ns, obj, _preload_content=False, _request_timeout=self._timeout))

    def _ensure(self, obj: Manifest) -> None:
        """Create a shared object (a zone policy) unless it exists; an existing one is replaced when it differs,
        so a zone whose mode changed gets its new policy."""
        name = obj["metadata"]["name"]
        with _api_errors(f"creating NetworkPolicy {name}"):
            try:
                self._create(obj)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = self._json(self._net.read_namespaced_network_policy(
                    name, self.namespace, _preload_content=False, _request_timeout=self._timeout))
                if current.get("spec") != obj["spec"]:
                    self._net.patch_namespaced_network_policy(name, self.namespace, {"spec": obj["spec"]},
                                                              _preload_content=False, _request_timeout=self._timeout)

    def _delete_job(self, name: str) -> None:
        """Foreground: the Job goes only after its pod; the Secret and ConfigMaps follow by ownership."""
        body = client.V1DeleteOptions(propagation_policy="Foreground", grace_period_seconds=0)
        for attempt in range(3):
            try:
                self._batch.delete_namespaced_job(name, self.namespace, body=body, _preload_content=False,
                                                  _request_timeout=self._timeout)
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
                log.warning("deleting job failed", extra={"job": name, "status": exc.status})
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("deleting job failed", extra={"job": name, "why": type(exc).__name__})
            time.sleep(0.2 * (attempt + 1))

    def _delete_owned(self, owned: tuple[Manifest, ...]) -> None:
        # Garbage collection would remove them with the Job; a secret should not wait for it.
        for obj in owned:
            delete = (self._core.delete_namespaced_secret if obj["kind"] == "Secret"
                      else self._core.delete_namespaced_config_map)
            with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError, OSError):
                delete(obj["metadata"]["name"], self.namespace, _preload_content=False, _request_timeout=self._timeout)

    # --- the Runtime interface -----------------------------------------------------------------------------

    def ping(self) -> None:
        with _api_errors(f"listing jobs in namespace {self.namespace}"):
            self._batch.list_namespaced_job(self.namespace, limit=1, _preload_content=False,
                                            _request_timeout=self._timeout)

    def run(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None = None,
            on_output: OutputSink | None = None) -> RunResult:
        secrets_dir = next((m.source for m in spec.mounts if m.target == SECRETS_MOUNT), None)
        try:
            files = read_only_files(spec, _read_dir)
            secrets = _read_dir(secrets_dir) if secrets_dir is not None else None
        except OSError as exc:
            # The staged secret files belong to the job's uid (0400): the daemon's user reads them only as root
            # or with CAP_DAC_READ_SEARCH (docs/kubernetes.md). Never a value in the message: names only.
            raise RuntimeFailure(f"job {spec.name}: cannot read its staged files ({exc.strerror or exc}); the "
                                 "kubernetes backend reads them to build the ConfigMap and Secret") from None
        objects = job_objects(spec, self.namespace, files, secrets, seccomp_dir=self.settings.seccomp_dir)
        name = spec.name
        reader: _LogReader | None = None
        created = False
        try:
            with self._policy_lock:
                for policy in objects.network_policies:
                    self._ensure(policy)
            with _api_errors(f"creating Job {name}"):
                job = self._create(objects.job)
                created = True
                uid = job["metadata"]["uid"]
                for obj in objects.owned:
                    for ref in obj["metadata"].get("ownerReferences", []):
                        ref["uid"] = uid
                    self._create(obj)
                self._batch.patch_namespaced_job(name, self.namespace, {"spec": {"suspend": False}},
                                                 _preload_content=False, _request_timeout=self._timeout)
            started = time.time()
            deadline = self._clock() + spec.limits.timeout_s + DEADLINE_GRACE_S
            outcome = self._follow(spec, stdin, cancel, on_output, deadline)
            reader = outcome.reader
            finished = time.time()
            if outcome.timed_out or outcome.cancelled:
                self._delete_job(name)  # ends the pod, and with it the log stream
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
                self._delete_job(name)
                self._delete_owned(objects.owned)

    def _follow(self, spec: ContainerSpec, stdin: bytes, cancel: threading.Event | None,
                on_output: OutputSink | None, deadline: float) -> _Ending:
        """Watch the job's pod (and its Job) to an end, in short watch windows with bounded reconnects."""
        result = _Ending()
        job_id = dict(spec.labels).get(JOB_LABEL, "")
        selector = f"{JOB_LABEL}={job_id}"
        pending_until = self._clock() + STARTUP_WAIT_S
        attached = False
        failures = 0
        resource_version: str | None = None
        while True:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                return result
            if self._clock() >= deadline:
                result.timed_out = True
                return result
            try:
                kwargs: dict[str, Any] = {"label_selector": selector, "timeout_seconds": WATCH_WINDOW_S,
                                          "deserialize": False, "_request_timeout": WATCH_WINDOW_S + self._timeout}
                if resource_version is not None:
                    kwargs["resource_version"] = resource_version
                w = watch.Watch()
                for event in w.stream(self._core.list_namespaced_pod, self.namespace, **kwargs):
                    pod: Manifest = event["object"]
                    resource_version = pod.get("metadata", {}).get("resourceVersion", resource_version)
                    pod_ip = (pod.get("status") or {}).get("podIP")
                    if pod_ip and spec.network.mode == "egress":
                        if len(self._addresses) > 10_000:
                            self._addresses.clear()
                        self._addresses[pod_ip] = job_id
                    if event["type"] == "DELETED":
                        # Deleted under us: the Job's deadline (the controller removes its pods, and may record
                        # the condition a moment later) or someone else.
                        past_timeout = self._clock() >= deadline - DEADLINE_GRACE_S
                        result.timed_out = past_timeout or self._deadline_passed(spec.name, wait_s=2.0)
                        if not result.timed_out:
                            raise RuntimeFailure(f"the pod of job {spec.name} was deleted from outside onexd")
                        return result
                    phase = (pod.get("status") or {}).get("phase")
                    if phase == "Pending":
                        fatal = pod_waiting(pod)
                        if fatal is not None:
                            raise RuntimeFailure(f"the pod of job {spec.name} cannot start: {fatal}")
                    elif not attached:
                        attached = True
                        pod_name = pod["metadata"]["name"]
                        if phase == "Running":
                            self._attach(pod_name, stdin)
                        result.reader = _LogReader(self._core, self.namespace, pod_name,
                                                   spec.limits.output_limit_bytes, on_output)
                        result.reader.start()
                    end = pod_end(pod)
                    if end is not None:
                        result.exit_code, result.oom = end
                        w.stop()
                        return result
                failures = 0
            except ApiException as exc:
                failures += 1
                if exc.status == 410:  # our resourceVersion is too old: start over from the current state
                    resource_version = None
                if failures > MAX_RECONNECTS:
                    raise RuntimeFailure(f"watching job {spec.name}: the Kubernetes API answered {exc.status} "
                                         f"{_reason(exc)} {failures} times in a row") from None
                time.sleep(min(0.1 * 2 ** failures, 2))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise RuntimeFailure(f"watching job {spec.name}: the Kubernetes API is unreachable "
                                         f"({type(exc).__name__})") from None
                time.sleep(min(0.1 * 2 ** failures, 2))
            if not attached and self._clock() > pending_until:
                raise RuntimeFailure(f"the pod of job {spec.name} did not start within {STARTUP_WAIT_S}s")
            if self._deadline_passed(spec.name):
                result.timed_out = True
                return result

    def _deadline_passed(self, name: str, wait_s: float = 0.0) -> bool:
        """Whether the Job failed with DeadlineExceeded; with wait_s, keep looking that long for the condition."""
        until = time.monotonic() + wait_s
        while True:
            with _api_errors(f"reading Job {name}"):
                try:
                    job = self._json(self._batch.read_namespaced_job(name, self.namespace, _preload_content=False,
                                                                     _request_timeout=self._timeout))
                except ApiException as exc:
                    if exc.status == 404:
                        return False
                    raise
            if job_deadline_exceeded(job) or time.monotonic() >= until:
                return job_deadline_exceeded(job)
            time.sleep(0.2)

    def _attach(self, pod: str, stdin: bytes) -> None:
        """Hand the input to the program's stdin, then end it (stdinOnce: the session's end is EOF)."""
        try:
            session = stream(self._core.connect_get_namespaced_pod_attach, pod, self.namespace, container=CONTAINER,
                             stdin=True, stdout=False, stderr=False, tty=False, _preload_content=False, binary=True)
        except ApiException as exc:
            # A program that ended before we attached did not read its input: that is its business.
            log.info("attach failed", extra={"pod": pod, "why": f"{exc.status} {exc.reason}"})
            return
        try:
            if stdin:
                session.write_stdin(stdin)
            session.close_channel(0)
        finally:
            session.close()

    def ensure_network(self, name: str, zone: str) -> None:
        """Zones are NetworkPolicies, created with each job (run()). Called before each job of an egress zone,
        right after its allowlist was written: the proxy's ConfigMap follows it."""
        self._sync_service(proxy_name(zone))

    def release_network(self, name: str) -> None:
        """Zone policies stay while the daemon runs: deleting one while a job of the zone starts would race, and
        the namespace's default deny keeps any pod without one isolated. reap() removes them at start."""

    # --- egress proxies: a Deployment + Service per zone ---------------------------------------------------

    def _upsert(self, obj: Manifest) -> None:
        """Create, or bring an existing object (a leftover being deleted, a changed allowlist) to obj."""
        kind, name, ns = obj["kind"], obj["metadata"]["name"], self.namespace
        creators = {"Deployment": self._apps.create_namespaced_deployment,
                    "Service": self._core.create_namespaced_service,
                    "ConfigMap": self._core.create_namespaced_config_map,
                    "NetworkPolicy": self._net.create_namespaced_network_policy}
        patchers = {"Deployment": self._apps.patch_namespaced_deployment,
                    "Service": self._core.patch_namespaced_service,
                    "ConfigMap": self._core.patch_namespaced_config_map,
                    "NetworkPolicy": self._net.patch_namespaced_network_policy}
        try:
            creators[kind](ns, obj, _preload_content=False, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status != 409:
                raise
            patchers[kind](name, ns, obj, _preload_content=False, _request_timeout=self._timeout)

    def _proxy_objects(self, spec: ContainerSpec) -> list[Manifest]:
        return proxy_objects(spec, self.namespace, read_only_files(spec, _read_dir), self.settings.seccomp_dir)

    def start_service(self, spec: ContainerSpec, networks: list[tuple[str, str]]) -> str:
        """The zone's proxy: its code and allowlist as ConfigMaps, a one-replica Deployment locked down like a
        job, a Service jobs reach it by, and its NetworkPolicy. `networks` has no meaning here: the zone's
        NetworkPolicy is what lets the zone's Pods reach it."""
        with _api_errors(f"starting service {spec.name}"):
            for obj in self._proxy_objects(spec):
                self._upsert(obj)
        self._services[spec.name] = spec
        return spec.name

    def _sync_service(self, name: str) -> None:
        """Push a changed allowlist into the proxy's ConfigMap (the kubelet refreshes mounted ConfigMaps within
        its sync period, about a minute; the proxy re-reads the file when it changes)."""
        spec = self._services.get(name)
        if spec is None:
            return
        with _api_errors(f"updating service {name}"):
            for obj in self._proxy_objects(spec):
                if obj["kind"] == "ConfigMap":
                    self._upsert(obj)

    def service_running(self, name: str) -> bool:
        """Whether the proxy's Deployment exists (its Pod may still be starting: service_logs tells when it
        listens)."""
        with _api_errors(f"reading Deployment {name}"):
            try:
                self._apps.read_namespaced_deployment(name, self.namespace, _preload_content=False,
                                                      _request_timeout=self._timeout)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    def service_logs(self, name: str, since: float) -> list[str]:
        zone = self._services[name].network.zone if name in self._services else name.removeprefix("onexd-proxy-")
        selector = f"{MANAGED_LABEL}=true,{ROLE_LABEL}=proxy,{ZONE_LABEL}={zone}"
        lines: list[str] = []
        with _api_errors(f"reading the log of {name}"):
            pods = self._json(self._core.list_namespaced_pod(self.namespace, label_selector=selector,
                                                             _preload_content=False, _request_timeout=self._timeout))
            for pod in pods.get("items", []):
                if (pod.get("status") or {}).get("phase") != "Running":
                    continue
                kwargs: dict[str, Any] = {}
                if since >= 1:
                    kwargs["since_seconds"] = max(1, int(time.time() - since) + 1)
                try:
                    response = self._core.read_namespaced_pod_log(
                        pod["metadata"]["name"], self.namespace, container=CONTAINER, _preload_content=False,
                        _request_timeout=self._timeout, **kwargs)
                except ApiException as exc:
                    if exc.status in (400, 404):  # starting or gone
                        continue
                    raise
                text = response.data.decode(errors="replace")
                lines += [line for line in text.splitlines() if line.strip()]
        return lines

    def remove_service(self, name: str) -> None:
        spec = self._services.pop(name, None)
        zone = spec.network.zone if spec is not None else name.removeprefix("onexd-proxy-")
        deletions: list[tuple[Any, str]] = [
            (self._apps.delete_namespaced_deployment, name), (self._core.delete_namespaced_service, name),
            (self._net.delete_namespaced_network_policy, f"{name}-policy")]
        with _api_errors(f"removing service {name}"):
            selector = f"{MANAGED_LABEL}=true,{ROLE_LABEL}=proxy,{ZONE_LABEL}={zone}"
            maps = self._json(self._core.list_namespaced_config_map(
                self.namespace, label_selector=selector, _preload_content=False, _request_timeout=self._timeout))
            deletions += [(self._core.delete_namespaced_config_map, m["metadata"]["name"])
                          for m in maps.get("items", [])]
            for delete, object_name in deletions:
                try:
                    delete(object_name, self.namespace, body=client.V1DeleteOptions(propagation_policy="Foreground"),
                           _preload_content=False, _request_timeout=self._timeout)
                except ApiException as exc:
                    if exc.status != 404:
                        raise

    def job_for_address(self, address: str) -> str | None:
        """The job whose Pod had this IP (seen while it ran): the proxy's refusals name their client by IP."""
        return self._addresses.get(address)

    def reap(self) -> list[str]:
        """Delete every onexd-managed Job (foreground), Deployment, Service, Secret, ConfigMap and NetworkPolicy of
        the namespace (but the default deny: it stays, so nothing opens while onexd is down)."""
        removed: list[str] = []
        selector = f"{MANAGED_LABEL}=true"
        kinds: list[tuple[str, Any, Any]] = [
            ("Job", self._batch.list_namespaced_job, None),
            ("Deployment", self._apps.list_namespaced_deployment, self._apps.delete_namespaced_deployment),
            ("Service", self._core.list_namespaced_service, self._core.delete_namespaced_service),
            ("Secret", self._core.list_namespaced_secret, self._core.delete_namespaced_secret),
            ("ConfigMap", self._core.list_namespaced_config_map, self._core.delete_namespaced_config_map),
            ("NetworkPolicy", self._net.list_namespaced_network_policy,
             self._net.delete_namespaced_network_policy),
        ]
        with _api_errors(f"reaping onexd objects in namespace {self.namespace}"):
            for kind, lister, deleter in kinds:
                listing = self._json(lister(self.namespace, label_selector=selector, _preload_content=False,
                                            _request_timeout=self._timeout))
                for item in listing.get("items", []):
                    name = item["metadata"]["name"]
                    if kind == "Job":
                        self._delete_job(name)
                    elif kind != "NetworkPolicy" or name != DEFAULT_DENY:  # the default deny stays: fail closed
                        with contextlib.suppress(ApiException):
                            deleter(name, self.namespace, _preload_content=False, _request_timeout=self._timeout)
                    removed.append(f"{kind.lower()}/{name}")
        return removed

    def image(self, name: str) -> ImageInfo | None:
        """Images live in the cluster's registry, not here: onexd cannot see them (a missing one fails the pod
        with ErrImagePull, which run() reports)."""
        return ImageInfo(name=name, image_id="", labels={})

    def import_image(self, tarball: str, name: str, labels: dict[str, str], changes: list[str]) -> ImageInfo:
        raise RuntimeFailure("the kubernetes backend does not build images: build them with `onexd image build` "
                             "on a Docker host and push them to the cluster's registry")
