"""The only module importing the official `kubernetes` client: API calls, the pod watch, the log stream, attaching
stdin, and the mapping of the client's errors to RuntimeFailure (`api_errors`).

Callers name what onexd was doing: a method that can fail with an API error runs under `api_errors(action)` at the
caller, so the message names the job or service; methods that decide on a status (404, 409, 410) do so here.
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

from onexd.errors import RuntimeFailure
from onexd.runtime.base import OutputSink
from onexd.runtime.k8s_manifests import CONTAINER, Manifest

log = logging.getLogger("onexd.kubernetes")

WATCH_WINDOW_S = 1  # each watch request ends after this long: cancellation and deadlines are checked between
MAX_RECONNECTS = 5  # consecutive failed watch requests before the job is an error

# Per kind: the API group and the name the client's methods use (create_namespaced_<name>, ...).
_KINDS = {"Job": ("batch", "job"), "Secret": ("core", "secret"), "ConfigMap": ("core", "config_map"),
          "NetworkPolicy": ("net", "network_policy"), "Deployment": ("apps", "deployment"),
          "Service": ("core", "service"), "Pod": ("core", "pod")}


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    namespace: str
    kubeconfig: str | None = None  # None with in_cluster False: the client's default (~/.kube/config)
    in_cluster: bool = False
    context: str | None = None
    seccomp_dir: str = "onexd"
    request_timeout_s: float = 30.0


@contextlib.contextmanager
def api_errors(action: str) -> Iterator[None]:
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


def read_dir(path: str) -> dict[str, bytes]:
    """Every file under path by relative name (what a ConfigMap or Secret carries). Raises OSError for anything
    it cannot read: a directory walk that skipped an unreadable entry would ship a job without its code or
    secrets."""
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


class KubeApi:
    """The namespace's API: one client configuration, the calls onexd makes, each with the request timeout."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self.namespace = settings.namespace
        configuration = client.Configuration()
        with api_errors("loading the Kubernetes client configuration"):
            if settings.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(config_file=settings.kubeconfig, context=settings.context,
                                        client_configuration=configuration)
        self._client = client.ApiClient(configuration)
        self._apis: dict[str, Any] = {"batch": client.BatchV1Api(self._client), "core": client.CoreV1Api(self._client),
                                      "net": client.NetworkingV1Api(self._client),
                                      "apps": client.AppsV1Api(self._client)}
        self.timeout = settings.request_timeout_s

    def close(self) -> None:
        self._client.close()

    def _call(self, verb: str, kind: str) -> Any:
        group, name = _KINDS[kind]
        return getattr(self._apis[group], f"{verb}_namespaced_{name}")

    def _json(self, response: Any) -> Manifest:
        data: Manifest = json.loads(response.data)
        return data

    def create(self, obj: Manifest) -> Manifest:
        return self._json(self._call("create", obj["kind"])(self.namespace, obj, _preload_content=False,
                                                            _request_timeout=self.timeout))

    def ensure(self, obj: Manifest) -> None:
        """Create a shared object (a zone policy) unless it exists; an existing one is replaced when it differs,
        so a zone whose mode changed gets its new policy."""
        name = obj["metadata"]["name"]
        with api_errors(f"creating NetworkPolicy {name}"):
            try:
                self.create(obj)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current = self._json(self._call("read", "NetworkPolicy")(
                    name, self.namespace, _preload_content=False, _request_timeout=self.timeout))
                if current.get("spec") != obj["spec"]:
                    self._call("patch", "NetworkPolicy")(name, self.namespace, {"spec": obj["spec"]},
                                                         _preload_content=False, _request_timeout=self.timeout)

    def upsert(self, obj: Manifest) -> None:
        """Create, or bring an existing object (a leftover being deleted, a changed allowlist) to obj."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        try:
            self._call("create", kind)(self.namespace, obj, _preload_content=False, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._call("patch", kind)(name, self.namespace, obj, _preload_content=False, _request_timeout=self.timeout)

    def resume_job(self, name: str) -> None:
        self._call("patch", "Job")(name, self.namespace, {"spec": {"suspend": False}}, _preload_content=False,
                                   _request_timeout=self.timeout)

    def read(self, kind: str, name: str) -> Manifest | None:
        """The object, or None when it does not exist."""
        try:
            return self._json(self._call("read", kind)(name, self.namespace, _preload_content=False,
                                                       _request_timeout=self.timeout))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def ping(self) -> None:
        self._call("list", "Job")(self.namespace, limit=1, _preload_content=False, _request_timeout=self.timeout)

    def items(self, kind: str, selector: str) -> list[Manifest]:
        listing = self._json(self._call("list", kind)(self.namespace, label_selector=selector, _preload_content=False,
                                                      _request_timeout=self.timeout))
        items: list[Manifest] = listing.get("items", [])
        return items

    def delete_job(self, name: str) -> None:
        """Foreground: the Job goes only after its pod; the Secret and ConfigMaps follow by ownership."""
        body = client.V1DeleteOptions(propagation_policy="Foreground", grace_period_seconds=0)
        for attempt in range(3):
            try:
                self._call("delete", "Job")(name, self.namespace, body=body, _preload_content=False,
                                            _request_timeout=self.timeout)
                return
            except ApiException as exc:
                if exc.status == 404:
                    return
                log.warning("deleting job failed", extra={"job": name, "status": exc.status})
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("deleting job failed", extra={"job": name, "why": type(exc).__name__})
            time.sleep(0.2 * (attempt + 1))

    def delete_owned(self, owned: tuple[Manifest, ...]) -> None:
        # Garbage collection would remove them with the Job; a secret should not wait for it.
        for obj in owned:
            kind = "Secret" if obj["kind"] == "Secret" else "ConfigMap"
            with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError, OSError):
                self._call("delete", kind)(obj["metadata"]["name"], self.namespace, _preload_content=False,
                                           _request_timeout=self.timeout)

    def delete_foreground(self, kind: str, name: str) -> None:
        """Delete with foreground propagation; one already gone is fine."""
        try:
            body = client.V1DeleteOptions(propagation_policy="Foreground")
            self._call("delete", kind)(name, self.namespace, body=body, _preload_content=False,
                                       _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_quietly(self, kind: str, name: str) -> None:
        """Delete, ignoring any answer of the API (the transport's failures still raise)."""
        with contextlib.suppress(ApiException):
            self._call("delete", kind)(name, self.namespace, _preload_content=False, _request_timeout=self.timeout)

    def pod_log(self, pod: str, since_seconds: int | None) -> str | None:
        """The container's log so far, or None while the pod is starting or once it is gone."""
        kwargs: dict[str, Any] = {"since_seconds": since_seconds} if since_seconds is not None else {}
        try:
            response = self._apis["core"].read_namespaced_pod_log(pod, self.namespace, container=CONTAINER,
                                                                  _preload_content=False,
                                                                  _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            if exc.status in (400, 404):  # starting or gone
                return None
            raise
        text: str = response.data.decode(errors="replace")
        return text

    def attach(self, pod: str, stdin: bytes) -> None:
        """Hand the input to the program's stdin, then end it (stdinOnce: the session's end is EOF)."""
        core = self._apis["core"]
        try:
            session = stream(core.connect_get_namespaced_pod_attach, pod, self.namespace, container=CONTAINER,
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

    def log_reader(self, pod: str, limit: int, on_output: OutputSink | None) -> LogReader:
        return LogReader(self._apis["core"], self.namespace, pod, limit, on_output)

    def pod_watch(self, selector: str, what: str) -> PodWatch:
        return PodWatch(self._apis["core"], self.namespace, selector, what, self.timeout)


class LogReader(threading.Thread):
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


class PodWatch:
    """A job's pods, watched in short windows with bounded reconnects: the caller checks its cancellation and
    deadlines between windows."""

    def __init__(self, core: Any, namespace: str, selector: str, what: str, timeout: float) -> None:
        self._core, self._namespace, self._selector, self._what = core, namespace, selector, what
        self._timeout = timeout
        self._failures = 0
        self._version: str | None = None

    def window(self, handle: Callable[[str, Manifest], bool]) -> bool:
        """One watch request: handle(event type, pod) for each event until it returns True (then True). A failed
        request counts toward MAX_RECONNECTS (RuntimeFailure past it) and backs off; a clean one resets the count.
        The client's failures inside handle count the same way."""
        try:
            kwargs: dict[str, Any] = {"label_selector": self._selector, "timeout_seconds": WATCH_WINDOW_S,
                                      "deserialize": False, "_request_timeout": WATCH_WINDOW_S + self._timeout}
            if self._version is not None:
                kwargs["resource_version"] = self._version
            w = watch.Watch()
            for event in w.stream(self._core.list_namespaced_pod, self._namespace, **kwargs):
                pod: Manifest = event["object"]
                self._version = pod.get("metadata", {}).get("resourceVersion", self._version)
                if handle(event["type"], pod):
                    w.stop()
                    return True
            self._failures = 0
        except ApiException as exc:
            self._failures += 1
            if exc.status == 410:  # our resourceVersion is too old: start over from the current state
                self._version = None
            if self._failures > MAX_RECONNECTS:
                raise RuntimeFailure(f"{self._what}: the Kubernetes API answered {exc.status} "
                                     f"{_reason(exc)} {self._failures} times in a row") from None
            time.sleep(min(0.1 * 2 ** self._failures, 2))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._failures += 1
            if self._failures > MAX_RECONNECTS:
                raise RuntimeFailure(f"{self._what}: the Kubernetes API is unreachable "
                                     f"({type(exc).__name__})") from None
            time.sleep(min(0.1 * 2 ** self._failures, 2))
        return False
