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


def _decide_with(rules: Path, egress: list[dict[str, object]], host: str, port: int) -> bool:
    rules.write_text(json.dumps({"zone": "web", "egress": egress}))
    import os
    import time

    os.utime(rules, (time.time() + 10, time.time() + 10))
    return asyncio.run(egress_proxy.decide(host, port))[0]


@pytest.mark.parametrize("egress", [
    [{"host": "localhost", "ports": [80]}],
    [{"cidr": "0.0.0.0/0", "ports": [80]}, {"cidr": "::/0", "ports": [80]}],
    [{"cidr": "127.0.0.0/7", "ports": [80]}],
])
def test_finding_22_permitted_name_resolving_to_loopback_is_refused(rules: Path, egress: list[dict[str, object]]
                                                                    ) -> None:
    """A host rule or a broad CIDR does not open loopback: only a CIDR inside the range names it."""
    assert not _decide_with(rules, egress, "localhost", 80)
    assert not _decide_with(rules, egress, "127.0.0.1", 80)


@pytest.mark.parametrize("address", ["169.254.169.254", "0.0.0.0",  # noqa: S104 - a destination, not a bind
                                     "::ffff:127.0.0.1", "224.0.0.1"])
def test_finding_22_link_local_and_special_addresses_are_refused(rules: Path, address: str) -> None:
    """Link-local (cloud metadata), unspecified, mapped loopback and multicast are refused under 0.0.0.0/0."""
    assert not _decide_with(rules, [{"cidr": "0.0.0.0/0", "ports": [80]}, {"cidr": "::/0", "ports": [80]}],
                            address, 80)


def test_finding_22_explicit_cidr_inside_the_range_allows_it(rules: Path) -> None:
    """A CIDR rule inside the special range (an operator's explicit choice) allows it."""
    assert _decide_with(rules, [{"cidr": "169.254.169.254/32", "ports": [80]}], "169.254.169.254", 80)


def test_finding_22_gateway_is_read_from_the_routing_table(tmp_path: Path) -> None:
    """The container's gateway (the Docker bridge: the host) counts as special."""
    routes = tmp_path / "route"
    routes.write_text("Iface\tDestination\tGateway \tFlags\n"
                      "eth0\t00000000\t010011AC\t0003\n"
                      "eth0\t000011AC\t00000000\t0001\n")
    found = egress_proxy.gateways(str(routes))
    assert [str(g) for g in found] == ["172.17.0.1"]
    assert egress_proxy.special(found[0], found)
    assert not egress_proxy.reachable("172.17.0.1", [], 80, found)
    assert egress_proxy.reachable("172.17.0.2", [], 80, found)


@pytest.mark.parametrize("content", [
    '{"zone": "web", "egress": [{"cidr": "10.0.0.0/33", "ports": [80]}, {"host": "localhost", "ports": [8080]}]}',
    '{"zone": "web", "egress": [{"cidr": 7, "ports": ["x"]}, null, 3]}',
    '{"zone": "web", "egress": {"not": "a list"}}',
    '[1, 2]',
    '{"zone": "web", "egress": [',
    '9' * 5000,
])
def test_finding_07_proxy_never_raises_on_its_own_config(rules: Path, content: str) -> None:
    """A malformed config entry allows nothing; the decision is made, never an exception."""
    rules.write_text(content)
    import os
    import time

    os.utime(rules, (time.time() + 20, time.time() + 20))
    allowed, _ = asyncio.run(egress_proxy.decide("10.0.0.1", 80))
    assert allowed is False
