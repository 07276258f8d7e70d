"""The egress proxy's decision: host names (exact and `*.`), CIDRs, ports; anything else refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from onexd.zoneproxy import egress_proxy


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.json"
    monkeypatch.setattr(egress_proxy, "CONFIG", str(config))
    monkeypatch.setattr(egress_proxy, "_config", {"mtime": 0.0, "zone": "?", "rules": []})
    config.write_text(json.dumps({"zone": "web", "egress": [
        {"host": "localhost", "ports": [8080]}, {"host": "*.localhost", "ports": [443]},
        {"cidr": "127.0.0.0/8", "ports": [9000]}]}))
    return config


@pytest.mark.parametrize(("host", "port", "allowed"), [
    # A host rule for a name that resolves to loopback allows nothing (finding 22); a CIDR rule inside the
    # loopback range names it explicitly.
    ("localhost", 8080, False), ("LOCALHOST.", 8080, False), ("localhost", 8081, False),
    ("127.0.0.1", 9000, True), ("localhost", 9000, True), ("127.0.0.1", 8080, False), ("::1", 9000, False),
])
def test_decide(rules: Path, host: str, port: int, allowed: bool) -> None:
    """Names resolve through /etc/hosts here (no DNS query leaves the machine); the port must match too."""
    assert asyncio.run(egress_proxy.decide(host, port))[0] is allowed


def test_a_changed_allowlist_applies_to_the_next_decision(rules: Path) -> None:
    """The proxy re-reads its config when the file changes (a reload writes a new one)."""
    assert asyncio.run(egress_proxy.decide("127.0.0.1", 9000))[0]
    import os
    import time

    rules.write_text(json.dumps({"zone": "web", "egress": []}))
    os.utime(rules, (time.time() + 5, time.time() + 5))
    assert not asyncio.run(egress_proxy.decide("127.0.0.1", 9000))[0]
