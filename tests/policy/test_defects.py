"""Every defect SPEC §3 names is rejected with exit 3 and a JSON item naming the file that holds it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import doc, minimal_docs, validate_json, write_bundle

Docs = list[dict[str, Any]]


def _find(docs: Docs, kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def _spec(docs: Docs, kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = _find(docs, kind)["spec"]
    return spec


def unknown_field(d: Docs) -> None:
    _spec(d, "Node")["retries"] = 3


def wrong_type(d: Docs) -> None:
    _spec(d, "SandboxProfile")["resources"]["pids"] = "many"


def missing_required(d: Docs) -> None:
    del _spec(d, "Node")["command"]


def dangling_role(d: Docs) -> None:
    _spec(d, "RoleBinding")["roles"] = ["ghost"]


def dangling_capability(d: Docs) -> None:
    _spec(d, "Role")["capabilities"] = ["ghost"]


def dangling_profile(d: Docs) -> None:
    _spec(d, "Node")["profile"] = "ghost"


def dangling_seccomp(d: Docs) -> None:
    _spec(d, "SandboxProfile")["seccompProfile"] = "ghost"


def dangling_zone(d: Docs) -> None:
    _spec(d, "SandboxProfile")["zone"] = "ghost"


def dangling_secret(d: Docs) -> None:
    _spec(d, "Node")["secrets"] = ["ghost"]


def dangling_secret_source(d: Docs) -> None:
    d.append(doc("Secret", "db", {"source": "ghost", "key": "db"}))


def dangling_node_source(d: Docs) -> None:
    _spec(d, "Node")["source"] = {"path": "nodes/missing"}


def escaping_node_source(d: Docs) -> None:
    _spec(d, "Node")["source"] = {"path": "../../etc"}


def inheritance_cycle(d: Docs) -> None:
    d.append(doc("Role", "a", {"inherits": ["b"]}))
    d.append(doc("Role", "b", {"inherits": ["a"]}))


def uid_zero(d: Docs) -> None:
    _spec(d, "SandboxProfile")["user"] = "0:1000"


def gid_zero(d: Docs) -> None:
    _spec(d, "SandboxProfile")["user"] = "1000:0"


def writable_root(d: Docs) -> None:
    _spec(d, "SandboxProfile")["readOnlyRootFilesystem"] = False


def cap_sys_admin(d: Docs) -> None:
    _spec(d, "SandboxProfile")["capabilities"] = {"add": ["SYS_ADMIN"]}


def cap_all(d: Docs) -> None:
    _spec(d, "SandboxProfile")["capabilities"] = {"add": ["ALL"]}


def seccomp_allow_default(d: Docs) -> None:
    d.append(doc("SeccompProfile", "loose", {"profile": {"defaultAction": "SCMP_ACT_ALLOW"}}))
    _spec(d, "SandboxProfile")["seccompProfile"] = "loose"


def seccomp_unconfined(d: Docs) -> None:
    _spec(d, "SandboxProfile")["seccompProfile"] = "unconfined"


def missing_limit(d: Docs) -> None:
    del _spec(d, "SandboxProfile")["resources"]["memory"]


def password_literal(d: Docs) -> None:
    _find(d, "Node")["metadata"]["annotations"] = {"db-password": "hunter2hunter2"}


def password_in_env(d: Docs) -> None:
    _spec(d, "SandboxProfile")["env"] = {"DB_PASSWORD": "hunter2"}


PEM = ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
       "-----END PRIVATE KEY-----")
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


def pem_in_description(d: Docs) -> None:
    _spec(d, "Node")["description"] = f"key for tests:\n{PEM}"


def jwt_in_annotation(d: Docs) -> None:
    _find(d, "Role")["metadata"]["annotations"] = {"note": f"use {JWT}"}


def timeout_above_profile(d: Docs) -> None:
    _spec(d, "Node")["timeoutSeconds"] = 3600


def unknown_api_version(d: Docs) -> None:
    _find(d, "Node")["apiVersion"] = "onexd/v2"


def invalid_name(d: Docs) -> None:
    _find(d, "Node")["metadata"]["name"] = "Echo_Node"


def non_semver(d: Docs) -> None:
    _spec(d, "Node")["version"] = "1.0"


def shell_string(d: Docs) -> None:
    _spec(d, "Node")["command"] = "cat /etc/passwd | head"


DEFECTS: list[tuple[Callable[[Docs], None], str]] = [
    (unknown_field, "schema/unknown-field"),
    (wrong_type, "schema/wrong-type"),
    (missing_required, "schema/missing-field"),
    (dangling_role, "ref/role"),
    (dangling_capability, "ref/capability"),
    (dangling_profile, "ref/profile"),
    (dangling_seccomp, "ref/seccomp"),
    (dangling_zone, "ref/zone"),
    (dangling_secret, "ref/secret"),
    (dangling_secret_source, "ref/secret-source"),
    (dangling_node_source, "ref/node-source"),
    (escaping_node_source, "ref/path-escape"),
    (inheritance_cycle, "ref/inherit-cycle"),
    (uid_zero, "security/root-user"),
    (gid_zero, "security/root-user"),
    (writable_root, "security/writable-root"),
    (cap_sys_admin, "security/capability-add"),
    (cap_all, "security/capability-add"),
    (seccomp_allow_default, "security/seccomp-allows-default"),
    (seccomp_unconfined, "security/seccomp-unconfined"),
    (missing_limit, "security/missing-limit"),
    (password_literal, "security/secret-literal"),
    (password_in_env, "security/secret-in-env"),
    (pem_in_description, "security/secret-literal"),
    (jwt_in_annotation, "security/secret-literal"),
    (timeout_above_profile, "ref/node-timeout"),
    (unknown_api_version, "schema/api-version"),
    (invalid_name, "schema/invalid-name"),
    (non_semver, "schema/invalid-version"),
    (shell_string, "schema/shell-command"),
]


def test_minimal_policy_is_valid(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The base every defect starts from validates cleanly."""
    write_bundle(policy_dir, "base", minimal_docs())
    code, items = validate_json(policy_dir, capsys)
    assert (code, items) == (0, [])


@pytest.mark.parametrize(("mutate", "rule"), DEFECTS, ids=[f.__name__ for f, _ in DEFECTS])
def test_defect_is_rejected_naming_the_file(mutate: Callable[[Docs], None], rule: str, policy_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The defect yields exit 3 and a JSON item with its rule code, the file, a line and a message."""
    docs = minimal_docs()
    mutate(docs)
    write_bundle(policy_dir, "base", docs)
    code, items = validate_json(policy_dir, capsys)
    assert code == 3
    matching = [i for i in items if i["code"] == rule]
    assert matching, f"expected {rule} in {items}"
    item = matching[0]
    assert item["file"].endswith("base/policy.yaml")
    assert item["severity"] == "error"
    assert item["line"] is not None and item["line"] >= 1
    assert item["message"]
    assert set(item) == {"file", "line", "path", "code", "severity", "message"}


RAW_DEFECTS = [
    ("duplicate_key", "apiVersion: onexd/v1\nkind: Role\nmetadata: {name: a}\nspec:\n  permissions: []\n"
                      "  permissions: ['*']\n", "yaml/duplicate-key", 6),
    ("python_tag", "apiVersion: onexd/v1\nkind: Role\nmetadata: {name: a}\n"
                   "spec: !!python/object/apply:os.system ['true']\n", "yaml/forbidden-tag", 4),
    ("ambiguous_bool", "apiVersion: onexd/v1\nkind: Capability\nmetadata: {name: a}\nspec: {adhoc: yes}\n",
     "yaml/ambiguous-scalar", 4),
    ("syntax", "apiVersion: onexd/v1\nkind: [Role\n", "yaml/syntax", None),
]


@pytest.mark.parametrize(("name", "text", "rule", "line"), RAW_DEFECTS, ids=[r[0] for r in RAW_DEFECTS])
def test_yaml_level_defect_is_rejected(name: str, text: str, rule: str, line: int | None, policy_dir: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """YAML that could be read two ways, or could run code, never reaches the schema stage."""
    write_bundle(policy_dir, "base", text)
    code, items = validate_json(policy_dir, capsys)
    assert code == 3
    item = next(i for i in items if i["code"] == rule)
    assert item["file"].endswith("base/policy.yaml")
    if line is not None:
        assert item["line"] == line


def test_name_used_in_two_bundles_is_an_error_of_the_second(policy_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A kind+name defined by two bundles is reported against the bundle that introduces it."""
    write_bundle(policy_dir, "a-first", minimal_docs())
    write_bundle(policy_dir, "b-second", [doc("Role", "runner", {"permissions": ["nodes:read"]})])
    code, items = validate_json(policy_dir, capsys)
    assert code == 3
    conflict = next(i for i in items if i["code"] == "bundle/name-conflict")
    assert conflict["file"].endswith("b-second/policy.yaml")
    assert "a-first" in conflict["message"]


def test_symlink_out_of_the_bundle_is_rejected(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A node directory that is a symlink to the host is a path escape, not code."""
    docs = minimal_docs()
    _spec(docs, "Node")["source"] = {"path": "code"}
    bundle = write_bundle(policy_dir, "base", docs)
    (bundle / "code").symlink_to("/etc")
    code, items = validate_json(policy_dir, capsys)
    assert code == 3
    assert any(i["code"] == "ref/path-escape" for i in items)


def test_all_problems_are_reported_not_only_the_first(policy_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """One run lists schema, semantic and security problems of several documents together."""
    docs = minimal_docs()
    unknown_field(docs)
    uid_zero(docs)
    dangling_role(docs)
    password_literal(docs)
    write_bundle(policy_dir, "base", docs)
    code, items = validate_json(policy_dir, capsys)
    assert code == 3
    codes = {i["code"] for i in items}
    assert {"schema/unknown-field", "security/root-user", "ref/role", "security/secret-literal"} <= codes


def test_bad_bundle_does_not_take_down_a_good_one(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Validation is per bundle: the good bundle is reported valid beside the broken one."""
    from onexd.policy.pipeline import load_directory

    write_bundle(policy_dir, "good", minimal_docs())
    write_bundle(policy_dir, "bad", [doc("Role", "x", {"inherits": ["nope"]})])
    ev = load_directory(policy_dir)
    accepted = {r.name: r.accepted for r in ev.reports}
    assert accepted == {"good": True, "bad": False}
    assert ev.snapshot is not None and "echo" in ev.snapshot.nodes


def test_warnings_do_not_fail_validation(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A permission outside the vocabulary is a warning: reported, exit 0."""
    docs = minimal_docs()
    _spec(docs, "Role")["permissions"] = ["nodes:execute", "widgets:polish"]
    write_bundle(policy_dir, "base", docs)
    code, items = validate_json(policy_dir, capsys)
    assert code == 0
    assert [i["severity"] for i in items] == ["warning"]
