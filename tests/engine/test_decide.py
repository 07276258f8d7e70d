"""decide(): default deny, reasons for every outcome, capabilities that cover profile, zone and secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from onexd.engine.decide import decide
from onexd.engine.request import JobRequest
from onexd.identity.principal import Principal, parse_subject
from onexd.policy.pipeline import load_directory
from onexd.policy.snapshot import Snapshot
from tests.conftest import EXAMPLES, doc, minimal_docs, write_bundle


@pytest.fixture(scope="module")
def examples() -> Snapshot:
    ev = load_directory(EXAMPLES)
    assert ev.snapshot is not None
    return ev.snapshot


def _snapshot(tmp_path: Path, docs: list[dict[str, Any]]) -> Snapshot:
    write_bundle(tmp_path, "b", docs)
    ev = load_directory(tmp_path)
    assert ev.ok, ev.all_problems()
    assert ev.snapshot is not None
    return ev.snapshot


def _codes(decision: Any) -> list[str]:
    return [r.code for r in decision.reasons]


def test_root_may_run_hello(examples: Snapshot) -> None:
    """A bound user with a covering capability is allowed, with the capability named."""
    d = decide(examples, parse_subject("UnixUser:root"), JobRequest(node="hello", input={"name": "x"}))
    assert d.allowed
    assert d.capability == "run-hello"
    assert d.sandbox is not None and d.sandbox.timeout_s == 10 and d.sandbox.zone == "none"
    assert d.snapshot_digest == examples.digest


def test_unbound_principal_is_denied_with_reason(examples: Snapshot) -> None:
    """Nobody bound: denied, and the reason lists the subjects that were looked up."""
    d = decide(examples, Principal(kind="unix", name="4242", uid=4242, gids=(4242,)),
               JobRequest(node="hello", input={"name": "x"}))
    assert not d.allowed
    assert _codes(d) == ["no-binding"]
    assert "UnixUser:4242" in d.reasons[0].message


def test_capability_must_cover_the_node(examples: Snapshot) -> None:
    """ApiKey deploy-bot may run hello but not wordcount."""
    who = parse_subject("ApiKey:deploy-bot")
    assert decide(examples, who, JobRequest(node="hello", input={})).allowed
    d = decide(examples, who, JobRequest(node="wordcount", input={}))
    assert not d.allowed and _codes(d)[-1] == "no-capability"


def test_token_subject_matches_binding(examples: Snapshot) -> None:
    """A Token subject is matched by its name, and gets the capabilities of its roles."""
    d = decide(examples, parse_subject("Token:ci-bot"), JobRequest(node="wordcount", input={"text": "a"}))
    assert d.allowed and d.sandbox is not None and d.sandbox.secrets == ("api-token",)


def test_group_binding_applies_to_members(tmp_path: Path) -> None:
    """A UnixGroup binding (by gid) applies to a principal holding that supplementary group."""
    docs = minimal_docs()
    docs[-1]["spec"]["subjects"] = [{"kind": "UnixGroup", "name": "4000"}]
    snap = _snapshot(tmp_path, docs)
    member = Principal(kind="unix", name="alice", uid=1234, gids=(1234, 4000))
    outsider = Principal(kind="unix", name="bob", uid=1235, gids=(1235,))
    assert decide(snap, member, JobRequest(node="echo")).allowed
    assert not decide(snap, outsider, JobRequest(node="echo")).allowed


def test_missing_permission_denies_even_with_capability(tmp_path: Path) -> None:
    """Capabilities without nodes:execute grant nothing."""
    docs = minimal_docs()
    docs[3]["spec"]["permissions"] = ["nodes:read"]
    d = decide(_snapshot(tmp_path, docs), parse_subject("UnixUser:root"), JobRequest(node="echo"))
    assert not d.allowed and _codes(d)[-1] == "missing-permission"


@pytest.mark.parametrize("perm", ["nodes:*", "*"])
def test_wildcard_permissions_grant_execute(tmp_path: Path, perm: str) -> None:
    """`nodes:*` and `*` include nodes:execute."""
    docs = minimal_docs()
    docs[3]["spec"]["permissions"] = [perm]
    assert decide(_snapshot(tmp_path, docs), parse_subject("UnixUser:root"), JobRequest(node="echo")).allowed


def test_inherited_role_gives_permissions_and_capabilities(tmp_path: Path) -> None:
    """A role inheriting another has its permissions and capabilities."""
    docs = minimal_docs()
    docs.append(doc("Role", "child", {"inherits": ["runner"]}))
    docs[4]["spec"]["roles"] = ["child"]
    d = decide(_snapshot(tmp_path, docs), parse_subject("UnixUser:root"), JobRequest(node="echo"))
    assert d.allowed and d.roles == ("child",)


def test_capability_missing_zone_or_secret_is_a_near_miss(tmp_path: Path) -> None:
    """A capability that covers the node but not its zone/secrets denies, saying what is missing."""
    docs = minimal_docs()
    docs += [doc("NetworkZone", "lab", {"mode": "internal"}),
             doc("SecretSource", "env", {"type": "env", "prefix": "X_"}),
             doc("Secret", "tok", {"source": "env", "key": "TOK"})]
    docs[1]["spec"].update(zone="lab", secrets=["tok"])
    d = decide(_snapshot(tmp_path, docs), parse_subject("UnixUser:root"), JobRequest(node="echo"))
    assert not d.allowed
    assert d.reasons[-1].code == "capability-incomplete"
    assert "zone lab" in d.reasons[-1].message and "secret tok" in d.reasons[-1].message


def test_adhoc_needs_an_adhoc_capability_with_the_profile(examples: Snapshot) -> None:
    """Ad-hoc commands need adhoc: true and the chosen profile."""
    root = parse_subject("UnixUser:root")
    ok = decide(examples, root, JobRequest(profile="busybox-tiny", command=("true",)))
    assert ok.allowed and ok.capability == "adhoc-busybox"
    other = decide(examples, root, JobRequest(profile="python-small", command=("true",)))
    assert not other.allowed and other.reasons[-1].code == "capability-incomplete"
    bot = decide(examples, parse_subject("Token:ci-bot"), JobRequest(profile="busybox-tiny", command=("true",)))
    assert not bot.allowed and bot.reasons[-1].code == "no-capability"


def test_requested_timeout_above_policy_is_denied(examples: Snapshot) -> None:
    """timeoutSeconds may only tighten the policy's limit."""
    root = parse_subject("UnixUser:root")
    assert decide(examples, root, JobRequest(node="hello", input={}, timeoutSeconds=5)).sandbox.timeout_s == 5  # type: ignore[union-attr]
    d = decide(examples, root, JobRequest(node="hello", input={}, timeoutSeconds=11))
    assert not d.allowed and d.reasons[-1].code == "timeout-above-policy"


def test_unknown_node_is_denied(examples: Snapshot) -> None:
    """A node that is not active is a denial with a reason, not an error."""
    d = decide(examples, parse_subject("UnixUser:root"), JobRequest(node="nope"))
    assert not d.allowed and d.reasons[-1].code == "unknown-node"


@pytest.mark.parametrize("body", [
    {"node": "hello", "profile": "x", "command": ["a"]},
    {"profile": "x"},
    {"command": ["a"]},
    {"profile": "x", "command": ["a"], "input": {}},
    {"node": "hello", "extra": 1},
    {"node": "hello", "timeoutSeconds": 0},
    {"profile": "x", "command": "sh -c x"},
])
def test_malformed_requests_are_refused(body: dict[str, Any]) -> None:
    """A request is either {node, input} or {profile, command}; anything else is invalid."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        JobRequest.model_validate(body)
