"""The forensics API on a real daemon (fake runtime): lockout after denials, 403 naming it, unlock; analyze; search."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import BASELINE, RESOURCES, doc, write_bundle
from tests.daemon.conftest import OTHER_UIDS, Daemon

TESTER = OTHER_UIDS[1]
ADHOC = {"profile": "busybox-tiny", "command": ["true"]}
STRICT = json.loads((BASELINE / "baseline" / "seccomp" / "onexd-strict.json").read_text())


def _responder_bundle(d: Daemon) -> None:
    """root may lift lockouts (users:write) in this test's policy."""
    write_bundle(d.policy_dir, "incident", [
        doc("Role", "incident-responder", {"permissions": ["users:write"]}),
        doc("RoleBinding", "responders", {"roles": ["incident-responder"],
                                          "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])


@pytest.mark.integration
def test_denials_lock_a_principal_out_until_unlocked(daemons: Callable[..., Daemon]) -> None:
    """Three denials lock; the next submit is a 403 naming the lockout; health lists it; unlock restores it;
    locked, refused and unlocked are all in the audit trail."""
    d = daemons(backend="fake", with_testers=True,
                extra={"lockout": {"enabled": True, "threshold": 3, "windowSeconds": 300, "lockSeconds": 900}})
    _responder_bundle(d)
    d.start()
    code, _ = d.curl("POST", "/v1/jobs?wait=true", ADHOC, uid=TESTER)
    assert code == 200  # allowed before any strike
    for _ in range(3):
        code, body = d.curl("POST", "/v1/jobs", {"node": "hello", "input": {"name": "x"}}, uid=TESTER)
        assert code == 403 and body["error"]["code"] == "denied"
    code, body = d.curl("POST", "/v1/jobs?wait=true", ADHOC, uid=TESTER)
    assert code == 403 and body["error"]["code"] == "locked-out" and "locked out" in body["error"]["message"]
    _, health = d.curl("GET", "/v1/health")
    locked = [x["principal"] for x in health["lockouts"]]
    assert len(locked) == 1
    code, _ = d.curl("POST", f"/v1/principals/{locked[0]}/unlock", uid=TESTER)
    assert code == 403  # the locked-out principal cannot lift its own lock
    code, body = d.curl("POST", f"/v1/principals/{locked[0]}/unlock")
    assert code == 200 and body["unlocked"] is True
    code, _ = d.curl("POST", "/v1/jobs?wait=true", ADHOC, uid=TESTER)
    assert code == 200
    _, health = d.curl("GET", "/v1/health")
    assert health["lockouts"] == []
    code, found = d.curl("GET", f"/v1/audit/search?principal={locked[0]}&outcome=denied")
    assert code == 200
    kinds: list[Any] = [(e["type"], (e["data"].get("reasons") or [None])[0]) for e in found["events"]]
    assert ("principal.locked", None) in kinds and ("authz.decision", "locked-out") in kinds
    code, found = d.curl("GET", "/v1/audit/search?type=principal.unlocked")
    assert code == 200 and [e["data"]["subject"] for e in found["events"]] == [locked[0]]


@pytest.mark.integration
def test_job_finished_event_and_metrics_carry_forensics(daemons: Callable[..., Daemon]) -> None:
    """job.finished names usage and blockedSyscall; /metrics has the usage histograms."""
    d = daemons(backend="fake")
    d.start()
    code, record = d.curl("POST", "/v1/jobs?wait=true", ADHOC)
    assert code == 200 and "usage" in record and record["blockedSyscall"] is None
    code, found = d.curl("GET", f"/v1/audit/search?type=job.finished&job={record['id']}")
    assert code == 200 and len(found["events"]) == 1
    assert {"usage", "blockedSyscall"} <= set(found["events"][0]["data"])
    code, text = d.curl("GET", "/metrics")
    assert code == 200
    for name in ("onexd_job_cpu_seconds", "onexd_job_memory_peak_bytes", "onexd_job_pids_peak",
                 "onexd_job_output_bytes"):
        assert f"# TYPE {name} histogram" in text


@pytest.mark.integration
def test_analyze_route_scores_the_active_policy(daemons: Callable[..., Daemon]) -> None:
    """GET /v1/policy/analyze (policy:read): a score per profile and node of the active snapshot."""
    d = daemons(backend="fake")
    d.start()
    code, body = d.curl("GET", "/v1/policy/analyze?hostCpus=2&hostMemory=8Gi")
    assert code == 200 and body["host"] == {"cpus": 2.0, "memoryBytes": 8 << 30}
    names = {(p["kind"], p["name"]) for p in body["postures"]}
    assert ("profile", "python-small") in names and ("node", "hello") in names
    code, _ = d.curl("GET", "/v1/policy/analyze?hostMemory=lots")
    assert code == 400


@pytest.mark.docker
def test_daemon_names_a_killed_syscall_and_locks_out_on_it(daemons: Callable[..., Daemon]) -> None:
    """Real engine: the record from the API has usage and blockedSyscall mkdir; with threshold 1 that block
    locks root out (403 locked-out) until unlocked."""
    d = daemons(backend="docker", extra={"lockout": {"enabled": True, "threshold": 1, "windowSeconds": 60,
                                                     "lockSeconds": 600}})
    allow = [n for n in STRICT["syscalls"][0]["names"] if n not in ("mkdir", "mkdirat")]
    killer = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
              "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}, *STRICT["syscalls"][1:],
                           {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    write_bundle(d.policy_dir, "incident", [
        doc("SeccompProfile", "no-mkdir", {"profile": killer}),
        doc("SandboxProfile", "no-mkdir", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                           "seccompProfile": "no-mkdir", "resources": dict(RESOURCES)}),
        doc("Capability", "adhoc-no-mkdir", {"adhoc": True, "profiles": ["no-mkdir"]}),
        doc("Role", "incident-responder", {"permissions": ["users:write", "nodes:execute"],
                                           "capabilities": ["adhoc-no-mkdir"]}),
        doc("RoleBinding", "responders", {"roles": ["incident-responder"],
                                          "subjects": [{"kind": "UnixUser", "name": "root"}]}),
    ])
    d.start()
    job = {"profile": "no-mkdir", "command": ["sh", "-c", 'read -r input; exec mkdir /tmp/x']}
    code, record = d.curl("POST", "/v1/jobs?wait=true", job)
    assert code == 200 and (record["status"], record["exitCode"]) == ("failed", 159), record
    assert record["blockedSyscall"]["name"] == "mkdir" and record["usage"]["wallMs"] > 0, record
    code, body = d.curl("POST", "/v1/jobs?wait=true", job)
    assert code == 403 and body["error"]["code"] == "locked-out"
    code, _ = d.curl("POST", f"/v1/principals/{record['principal']}/unlock")
    assert code == 200
