"""Egress zones end to end: a proxy that allows exactly the zone's list, on networks and servers the test makes.

No other address is ever contacted: the web servers are containers on a network this test creates, and the
only "outside" address tried is that network's own gateway, which the proxy refuses without connecting.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
import yaml

from tests.conftest import doc, write_bundle
from tests.daemon.conftest import Daemon
from tests.runtime import cis

pytestmark = pytest.mark.docker

# busybox's static wget crashes when it resolves names; jobs fetch with Python's urllib (which honours
# HTTP_PROXY, or ignores it with an empty ProxyHandler).
FETCH = """
import sys, urllib.request as u
handler = u.ProxyHandler({}) if sys.argv[2] == "direct" else u.ProxyHandler()
for attempt in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
    try:
        print(u.build_opener(handler).open(sys.argv[1], timeout=3).read().decode().strip())
        print("exit=0")
        break
    except Exception as e:
        print(type(e).__name__, getattr(e, "code", ""), str(e)[:200])
        import time; time.sleep(0.1)
else:
    print("exit=1")
"""
SERVE = ("mkdir -p /tmp/www && echo ok-$NAME > /tmp/www/index.html && httpd -p 8080 -h /tmp/www "
         "&& httpd -f -p 8081 -h /tmp/www")


@dataclass
class Lab:
    network: str
    gateway: str
    a: str
    b: str
    ids: list[str]


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A network of the test's own and two web servers on it (A and B, ports 8080 and 8081)."""
    client = docker.APIClient(version="auto")
    name = f"onexd-test-egress-{uuid.uuid4().hex[:8]}"
    net_id = client.create_network(name, driver="bridge", labels={"onexd.test": "true"})["Id"]
    ids = []
    try:
        for server in ("A", "B"):
            cid = client.create_container(
                "onexd/runner-busybox", command=["sh", "-c", SERVE], environment=[f"NAME={server}"],
                user="1000:1000", host_config=client.create_host_config(
                    network_mode=name, read_only=True, tmpfs={"/tmp": "size=1m"}, cap_drop=["ALL"],
                    security_opt=["no-new-privileges:true"], mem_limit="32m", pids_limit=32),
                labels={"onexd.test": "true"})["Id"]
            client.start(cid)
            ids.append(cid)
        addresses = [client.inspect_container(c)["NetworkSettings"]["Networks"][name]["IPAddress"] for c in ids]
        gateway = client.inspect_network(net_id)["IPAM"]["Config"][0]["Gateway"]
        yield Lab(name, gateway, addresses[0], addresses[1], ids)
    finally:
        for cid in ids:
            client.remove_container(cid, force=True)
        client.remove_network(net_id)
        client.close()


def _zone_docs(allow: list[dict[str, Any]]) -> list[dict[str, Any]]:
    profile = {"image": "onexd/runner-python", "user": "1000:1000", "resources": {
        "memory": "64Mi", "cpus": 0.5, "pids": 32, "nofile": 64, "timeoutSeconds": 30, "outputBytes": "64Ki"}}
    return [
        doc("NetworkZone", "web", {"mode": "egress", "egress": allow}),
        doc("NetworkZone", "lab", {"mode": "internal"}),
        doc("SandboxProfile", "in-web", {**profile, "zone": "web"}),
        doc("SandboxProfile", "in-lab", {**profile, "zone": "lab"}),
        doc("SandboxProfile", "isolated", profile),
        doc("Capability", "probe-zones", {"adhoc": True, "profiles": ["in-web", "in-lab", "isolated"],
                                          "zones": ["web", "lab"]}),
        doc("Role", "zone-prober", {"permissions": ["nodes:execute"], "capabilities": ["probe-zones"]}),
        doc("RoleBinding", "zone-probers", {"roles": ["zone-prober"],
                                            "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ]


def _fetch(d: Daemon, profile: str, url: str, proxy: bool = True) -> dict[str, Any]:
    command = ["python3", "-c", FETCH, url, "proxy" if proxy else "direct"]
    code, record = d.curl("POST", "/v1/jobs?wait=true", {"profile": profile, "command": command})
    assert code == 200, record
    assert record["status"] != "error", record["reason"]
    return dict(record)


def _managed(client: docker.APIClient) -> tuple[list[Any], list[Any]]:
    return (client.containers(all=True, filters={"label": "onexd.managed=true"}),
            client.networks(filters={"label": "onexd.managed=true"}))


def test_egress_zone_allows_exactly_its_list(lab: Lab, daemons: Callable[..., Daemon]) -> None:
    """Allowed server: fetched through the proxy. Other server, other port, the gateway: refused (and audited).
    Bypassing the proxy, or a job in an internal or `none` zone: nothing reachable."""
    d = daemons(extra={"runtime": {"egressNetwork": lab.network}})
    write_bundle(d.policy_dir, "egress", _zone_docs([{"cidr": f"{lab.a}/32", "ports": [8080]}]))
    d.start()
    allowed = _fetch(d, "in-web", f"http://{lab.a}:8080/")
    assert "ok-A" in allowed["stdout"] and "exit=0" in allowed["stdout"], allowed["stdout"]
    for url in (f"http://{lab.b}:8080/", f"http://{lab.a}:8081/", f"http://{lab.gateway}:8080/"):
        refused = _fetch(d, "in-web", url)
        assert "exit=0" not in refused["stdout"] and "HTTPError 403" in refused["stdout"], (url, refused["stdout"])
    direct = _fetch(d, "in-web", f"http://{lab.a}:8080/", proxy=False)
    assert "ok-A" not in direct["stdout"] and "exit=0" not in direct["stdout"]
    for profile in ("in-lab", "isolated"):
        for url in (f"http://{lab.a}:8080/", f"http://{lab.b}:8080/"):
            record = _fetch(d, profile, url, proxy=False)
            assert "ok-" not in record["stdout"] and "exit=0" not in record["stdout"], (profile, url, record)
    env = d.curl("POST", "/v1/jobs?wait=true", {"profile": "in-web", "command": [
        "python3", "-c", "import os; print(os.environ['HTTP_PROXY'], os.environ['no_proxy'])"]})[1]
    assert env["stdout"] == "http://onexd-proxy:3128 localhost,127.0.0.1\n"
    deadline = time.monotonic() + 10
    refusals: list[dict[str, Any]] = []
    while len(refusals) < 3:
        assert time.monotonic() < deadline, "refusals were not audited"
        events = d.curl("GET", "/v1/audit?since=0&limit=10000")[1]["events"]
        refusals = [e for e in events if e["type"] == "egress.refused"]
        time.sleep(0.3)
    destinations = {e["data"]["destination"] for e in refusals}
    assert {f"{lab.b}:8080", f"{lab.a}:8081", f"{lab.gateway}:8080"} <= destinations
    assert all(e["data"]["zone"] == "web" and e["data"]["job"] for e in refusals)
    zones = {z["name"]: z for z in d.curl("GET", "/v1/zones")[1]["zones"]}
    assert zones["web"]["proxy"] == "running" and zones["web"]["egress"] == [{"cidr": f"{lab.a}/32", "ports": [8080]}]


def test_reload_changes_the_allowlist_within_2s(lab: Lab, daemons: Callable[..., Daemon]) -> None:
    """A running job retrying B sees it allowed within 2 s of the reload that adds it; no restart."""
    d = daemons(extra={"runtime": {"egressNetwork": lab.network}, "reload": {"debounceMs": 200}})
    write_bundle(d.policy_dir, "egress", _zone_docs([{"cidr": f"{lab.a}/32", "ports": [8080]}]))
    d.start()
    assert "ok-A" in _fetch(d, "in-web", f"http://{lab.a}:8080/")["stdout"]
    loop = ["python3", "-c", FETCH + "\nsys.exit(0 if attempt < 199 else 1)", f"http://{lab.b}:8080/", "proxy", "200"]
    job = d.curl("POST", "/v1/jobs", {"profile": "in-web", "command": loop})[1]
    time.sleep(1.0)
    assert d.curl("GET", f"/v1/jobs/{job['id']}")[1]["status"] == "running"  # still refused
    write_bundle(d.policy_dir, "egress", _zone_docs([{"cidr": f"{lab.a}/32", "ports": [8080]},
                                                     {"cidr": f"{lab.b}/32", "ports": [8080]}]), version="1.1.0")
    changed = time.time()
    deadline = time.monotonic() + 20
    while (record := d.curl("GET", f"/v1/jobs/{job['id']}")[1])["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert record["status"] == "succeeded" and "ok-B" in record["stdout"]
    from datetime import datetime

    finished = datetime.fromisoformat(record["finishedAt"].replace("Z", "+00:00")).timestamp()
    assert finished - changed < 2.0, f"took {finished - changed:.2f}s"


def test_proxy_is_locked_down_and_nothing_is_left_behind(lab: Lab, daemons: Callable[..., Daemon]) -> None:
    """The proxy passes the job lockdown checks; removing the zone removes its proxy and network; so does stop."""
    d = daemons(extra={"runtime": {"egressNetwork": lab.network}})
    write_bundle(d.policy_dir, "egress", _zone_docs([{"cidr": f"{lab.a}/32", "ports": [8080]}]))
    d.start()
    assert "ok-A" in _fetch(d, "in-web", f"http://{lab.a}:8080/")["stdout"]
    client = docker.APIClient(version="auto")
    try:
        proxy = client.inspect_container("onexd-proxy-web")
        hc = proxy["HostConfig"]
        assert hc["ReadonlyRootfs"] and hc["CapDrop"] == ["ALL"] and not hc["CapAdd"] and not hc["Privileged"]
        assert "no-new-privileges:true" in hc["SecurityOpt"] and proxy["Config"]["User"] == "65532:65532"
        assert hc["Memory"] == hc["MemorySwap"] > 0 and hc["PidsLimit"] > 0 and hc["NanoCpus"] > 0
        assert {m["Destination"]: m["RW"] for m in proxy["Mounts"]} == {"/app/proxy": False, "/etc/onexd-zone": False}
        assert set(proxy["NetworkSettings"]["Networks"]) == {lab.network, "onexd-zone-web"}
        assert cis.failures(proxy) == {}
        # The zone disappears from policy: its proxy and network go.
        write_bundle(d.policy_dir, "egress", [doc for doc in _zone_docs([]) if doc["metadata"]["name"] not in
                                              ("web", "in-web")], version="2.0.0")
        docs = yaml.safe_load_all((d.policy_dir / "egress" / "policy.yaml").read_text())
        fixed = []
        for item in docs:
            if item["kind"] == "Capability":
                item["spec"]["profiles"] = ["in-lab", "isolated"]
                item["spec"]["zones"] = ["lab"]
            fixed.append(item)
        (d.policy_dir / "egress" / "policy.yaml").write_text(yaml.safe_dump_all(fixed))
        deadline = time.monotonic() + 10
        while any(c["Names"][0] == "/onexd-proxy-web" for c in _managed(client)[0]):
            assert time.monotonic() < deadline, d.curl("GET", "/v1/policy")[1]
            time.sleep(0.2)
        assert not any(n["Name"] == "onexd-zone-web" for n in _managed(client)[1])
        assert "ok-" not in _fetch(d, "in-lab", f"http://{lab.a}:8080/", proxy=False)["stdout"]
        d.stop()
        assert _managed(client) == ([], [])
    finally:
        client.close()
    assert json.dumps(lab.ids)
