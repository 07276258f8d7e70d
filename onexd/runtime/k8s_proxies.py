"""The Kubernetes backend's egress proxies: per zone a Deployment, a Service, its ConfigMaps (code, allowlist)
and its NetworkPolicy, through onexd.runtime.k8s_client."""

from __future__ import annotations

import time

from onexd.runtime.k8s_client import KubeApi, api_errors, read_dir
from onexd.runtime.k8s_manifests import ROLE_LABEL, ZONE_LABEL, Manifest, proxy_objects, read_only_files
from onexd.spec import MANAGED_LABEL, ContainerSpec


class ZoneProxies:
    """The zone proxies of one namespace, by service name."""

    def __init__(self, api: KubeApi, seccomp_dir: str) -> None:
        self._api = api
        self._seccomp_dir = seccomp_dir
        self._services: dict[str, ContainerSpec] = {}

    def _proxy_objects(self, spec: ContainerSpec) -> list[Manifest]:
        return proxy_objects(spec, self._api.namespace, read_only_files(spec, read_dir), self._seccomp_dir)

    def start(self, spec: ContainerSpec) -> str:
        """The zone's proxy: its code and allowlist as ConfigMaps, a one-replica Deployment locked down like a
        job, a Service jobs reach it by, and its NetworkPolicy."""
        with api_errors(f"starting service {spec.name}"):
            for obj in self._proxy_objects(spec):
                self._api.upsert(obj)
        self._services[spec.name] = spec
        return spec.name

    def sync(self, name: str) -> None:
        """Push a changed allowlist into the proxy's ConfigMap (the kubelet refreshes mounted ConfigMaps within
        its sync period, about a minute; the proxy re-reads the file when it changes)."""
        spec = self._services.get(name)
        if spec is None:
            return
        with api_errors(f"updating service {name}"):
            for obj in self._proxy_objects(spec):
                if obj["kind"] == "ConfigMap":
                    self._api.upsert(obj)

    def running(self, name: str) -> bool:
        """Whether the proxy's Deployment exists (its Pod may still be starting: logs() tells when it listens)."""
        with api_errors(f"reading Deployment {name}"):
            return self._api.read("Deployment", name) is not None

    def _zone(self, name: str) -> str:
        spec = self._services.get(name)
        return spec.network.zone if spec is not None else name.removeprefix("onexd-proxy-")

    def logs(self, name: str, since: float) -> list[str]:
        selector = f"{MANAGED_LABEL}=true,{ROLE_LABEL}=proxy,{ZONE_LABEL}={self._zone(name)}"
        lines: list[str] = []
        with api_errors(f"reading the log of {name}"):
            for pod in self._api.items("Pod", selector):
                if (pod.get("status") or {}).get("phase") != "Running":
                    continue
                since_seconds = max(1, int(time.time() - since) + 1) if since >= 1 else None
                text = self._api.pod_log(pod["metadata"]["name"], since_seconds)
                if text is None:
                    continue
                lines += [line for line in text.splitlines() if line.strip()]
        return lines

    def remove(self, name: str) -> None:
        zone = self._zone(name)
        self._services.pop(name, None)
        deletions = [("Deployment", name), ("Service", name), ("NetworkPolicy", f"{name}-policy")]
        with api_errors(f"removing service {name}"):
            selector = f"{MANAGED_LABEL}=true,{ROLE_LABEL}=proxy,{ZONE_LABEL}={zone}"
            deletions += [("ConfigMap", m["metadata"]["name"]) for m in self._api.items("ConfigMap", selector)]
            for kind, object_name in deletions:
                self._api.delete_foreground(kind, object_name)
