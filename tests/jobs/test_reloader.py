"""PolicyReloader: a reload is counted, audited bundle by bundle, and zones follow the new policy."""

from __future__ import annotations

import shutil
from pathlib import Path

from onexd.audit.events import problems_of
from onexd.audit.trail import AuditLog
from onexd.jobs.reloader import PolicyReloader
from onexd.jobs.zones import EgressZones
from onexd.metrics import Metrics
from onexd.policy.manager import PolicyManager
from onexd.policy.store import BundleStore
from onexd.runtime.fake import FakeRuntime
from tests.conftest import EXAMPLES


def _reloader(tmp_path: Path) -> tuple[PolicyReloader, Path, AuditLog, Metrics, FakeRuntime]:
    policy = tmp_path / "policies"
    shutil.copytree(EXAMPLES, policy)
    audit = AuditLog(tmp_path / "audit", clock=lambda: 1_800_000_000.0)
    metrics, runtime = Metrics(), FakeRuntime()
    manager = PolicyManager(policy, BundleStore(tmp_path / "state" / "policy"))
    zones = EgressZones(runtime, tmp_path / "state", "bridge")
    return PolicyReloader(manager, audit, metrics, zones, runtime), policy, audit, metrics, runtime


def _count(metrics: Metrics, result: str) -> float:
    return metrics.reloads.labels(result)._value.get()


def test_a_reload_is_counted_and_each_activated_bundle_audited(tmp_path: Path) -> None:
    """The first reload activates both example bundles: one `ok` count, one policy.activated event each."""
    reloader, _, audit, metrics, _ = _reloader(tmp_path)
    result = reloader.reload("startup")
    events = [e for e in audit.read() if e["type"].startswith("policy.")]
    assert {e["data"]["bundle"] for e in events if e["type"] == "policy.activated"} == set(result.activated)
    assert all(e["data"]["reason"] == "startup" and e["policy"] == result.digest for e in events)
    assert _count(metrics, "ok") == 1.0
    assert [p for e in events for p in problems_of(e)] == []
    audit.close()


def test_a_rejected_bundle_is_counted_and_audited_with_its_codes(tmp_path: Path) -> None:
    """A broken bundle counts as `rejected` and its event lists the problem codes."""
    reloader, policy, audit, metrics, _ = _reloader(tmp_path)
    reloader.reload("startup")
    (policy / "hello" / "bundle.yaml").write_text("not: [valid")
    result = reloader.reload("watch")
    assert result.rejected and _count(metrics, "rejected") == 1.0
    rejected = [e for e in audit.read() if e["type"] == "policy.rejected"]
    assert rejected and rejected[0]["data"]["codes"] and problems_of(rejected[0]) == []
    audit.close()


def test_a_removed_zone_leaves_no_network(tmp_path: Path) -> None:
    """When a bundle with a zone goes away, the zone's network is released and the removal audited."""
    reloader, policy, audit, _, runtime = _reloader(tmp_path)
    reloader.reload("startup")
    runtime.networks.add("onexd-zone-analytics")
    shutil.rmtree(policy / "data-job")
    result = reloader.reload("watch")
    assert result.removed == ("data-job",)
    assert "onexd-zone-analytics" not in runtime.networks
    assert any(e["type"] == "policy.removed" for e in audit.read())
    audit.close()
