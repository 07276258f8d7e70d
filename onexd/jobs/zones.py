"""Egress zones: for each zone in use, an internal network and a proxy container allowing the zone's list.

Created on demand (the first job of the zone), kept in step with reloads (the proxy re-reads its allowlist,
so new connections follow a change within a second), removed when the zone disappears or the daemon stops.
The proxy's refusals are collected from its output for the audit trail and the metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from onexd.engine.translate import PROXY_ALIAS, proxy_name, proxy_spec, zone_network_name
from onexd.errors import RuntimeFailure
from onexd.fsutil import atomic_write
from onexd.policy.loader import tree_digest
from onexd.policy.snapshot import Snapshot
from onexd.runtime.base import ZoneNetworks

log = logging.getLogger("onexd.zones")
Refusal = Callable[[dict[str, Any]], None]


def proxy_code() -> dict[str, bytes]:
    return {"egress_proxy.py": resources.files("onexd.zoneproxy").joinpath("egress_proxy.py").read_bytes()}


class EgressZones:
    def __init__(self, runtime: ZoneNetworks, state_dir: Path, egress_network: str,
                 on_refusal: Refusal | None = None) -> None:
        self.runtime = runtime
        self.root = state_dir / "zones"
        self.egress_network = egress_network
        self.on_refusal = on_refusal or (lambda event: None)
        self._lock = threading.Lock()
        self._active: dict[str, float] = {}  # zone -> when its log was last read

    def _code_dir(self) -> Path:
        files = proxy_code()
        target = self.root / "proxy-code" / tree_digest(files)
        if not target.is_dir():
            target.mkdir(parents=True)
            for name, data in files.items():
                (target / name).write_bytes(data)
                (target / name).chmod(0o444)
            target.chmod(0o555)  # read by the proxy's own uid (the daemon's umask is 077)
        return target

    def _write_config(self, snapshot: Snapshot, zone: str) -> Path:
        directory = self.root / zone
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)  # read by the proxy's own uid (the daemon's umask is 077)
        rules = [r.model_dump(mode="json", exclude_none=True) for r in snapshot.zones[zone].egress]
        # The proxy sees the whole new list or the old one.
        atomic_write(directory / "config.json",
                     json.dumps({"zone": zone, "policy": snapshot.digest, "egress": rules}).encode(), 0o444)
        return directory

    def prepare(self, snapshot: Snapshot, zone: str) -> None:
        """Make the zone ready for a job: network, allowlist, a running proxy."""
        with self._lock:
            config_dir = self._write_config(snapshot, zone)
            network = zone_network_name(zone)
            self.runtime.ensure_network(network, zone)
            name = proxy_name(zone)
            if not self.runtime.service_running(name):
                self.runtime.remove_service(name)  # a dead one is replaced
                spec = proxy_spec(zone, snapshot.digest, str(self._code_dir()), str(config_dir), self.egress_network)
                self.runtime.start_service(spec, [(network, PROXY_ALIAS)])
                self._wait_listening(name)
                log.info("zone proxy started", extra={"zone": zone})
            self._active.setdefault(zone, time.time())

    def _wait_listening(self, name: str, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any('"listening"' in line for line in self.runtime.service_logs(name, 0)):
                return
            if not self.runtime.service_running(name):
                break
            time.sleep(0.05)
        raise RuntimeFailure(f"the egress proxy {name} did not start")

    def update(self, snapshot: Snapshot) -> None:
        """After a reload: new allowlists for live zones; zones gone (or no longer egress) are removed."""
        with self._lock:
            for zone in list(self._active):
                spec = snapshot.zones.get(zone)
                if spec is None or spec.mode != "egress":
                    self._remove(zone)
                else:
                    self._write_config(snapshot, zone)

    def collect(self) -> int:
        """Read the proxies' refusals since last time; each goes to on_refusal with the job it came from."""
        count = 0
        for zone, since in list(self._active.items()):
            now = time.time()
            for line in self.runtime.service_logs(proxy_name(zone), since):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("event") == "refused" and float(event.get("ts", 0)) >= since:
                        event["job"] = self.runtime.job_for_address(str(event.get("client", "")))
                        self.on_refusal(event)
                        count += 1
            self._active[zone] = now
        return count

    def _remove(self, zone: str) -> None:
        self.runtime.remove_service(proxy_name(zone))
        with contextlib.suppress(RuntimeFailure):
            self.runtime.release_network(zone_network_name(zone))
        self._active.pop(zone, None)
        log.info("zone proxy removed", extra={"zone": zone})

    def zones(self) -> dict[str, bool]:
        return {zone: self.runtime.service_running(proxy_name(zone)) for zone in self._active}

    def stop(self) -> None:
        with self._lock:
            for zone in list(self._active):
                self._remove(zone)


