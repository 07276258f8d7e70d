"""EgressZones on the fake runtime: a zone's network, allowlist and proxy follow the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from onexd.engine.translate import proxy_name, zone_network_name
from onexd.jobs.zones import EgressZones
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from onexd.runtime.fake import FakeRuntime
from tests.conftest import doc, minimal_docs, write_bundle


def _snapshot(root: Path, allow: list[dict[str, Any]]) -> Snapshot:
    write_bundle(root, "zones", [*minimal_docs(), doc("NetworkZone", "web", {"mode": "egress", "egress": allow})])
    ev = load_directory(root)
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    return ev.snapshot


def test_a_zone_is_prepared_updated_and_stopped(tmp_path: Path) -> None:
    """prepare: network, read-only allowlist and a running proxy; update: the new list; stop: nothing left."""
    runtime = FakeRuntime()
    runtime.service_output[proxy_name("web")] = ['{"event": "listening"}']
    zones = EgressZones(runtime, tmp_path / "state", "bridge")
    first = _snapshot(tmp_path / "p1", [{"cidr": "192.0.2.1/32", "ports": [443]}])
    zones.prepare(first, "web")
    config = tmp_path / "state" / "zones" / "web" / "config.json"
    assert zone_network_name("web") in runtime.networks and zones.zones() == {"web": True}
    assert json.loads(config.read_text())["egress"] == [{"cidr": "192.0.2.1/32", "ports": [443]}]
    assert config.stat().st_mode & 0o777 == 0o444
    second = _snapshot(tmp_path / "p2", [{"cidr": "192.0.2.2/32", "ports": [443]}])
    zones.update(second)
    assert json.loads(config.read_text())["egress"][0]["cidr"] == "192.0.2.2/32"
    zones.stop()
    assert runtime.services == {} and zone_network_name("web") not in runtime.networks


def test_refusals_are_collected_with_their_job(tmp_path: Path) -> None:
    """Each `refused` line of the proxy's output goes to on_refusal once."""
    runtime = FakeRuntime()
    seen: list[dict[str, Any]] = []
    zones = EgressZones(runtime, tmp_path / "state", "bridge", on_refusal=seen.append)
    runtime.service_output[proxy_name("web")] = ['{"event": "listening"}']
    zones.prepare(_snapshot(tmp_path / "p", [{"cidr": "192.0.2.1/32", "ports": [443]}]), "web")
    runtime.service_output[proxy_name("web")].append(
        json.dumps({"event": "refused", "ts": 4_000_000_000, "client": "10.0.0.2", "host": "x", "port": 1}))
    assert zones.collect() == 1 and seen[0]["host"] == "x" and "job" in seen[0]
