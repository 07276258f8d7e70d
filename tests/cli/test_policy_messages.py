"""Validation messages a newcomer understands (issue 13, point 10), through `onexd policy validate`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import doc, minimal_docs, run_cli, write_bundle


def _problems(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, _ = run_cli(["policy", "validate", str(path), "-o", "json", *extra], capsys)
    return code, json.loads(out)


def test_decimal_sizes_are_answered_with_the_accepted_spellings(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """memory: 512M / outputBytes: 1G say which spellings are accepted, not "expected integer, got str"."""
    docs = minimal_docs()
    docs[0]["spec"]["resources"].update({"memory": "512M", "outputBytes": "1G"})
    code, problems = _problems(write_bundle(tmp_path, "sizes", docs), capsys)
    assert code == 3
    messages = {p["path"]: p["message"] for p in problems}
    for field in ("/spec/resources/memory", "/spec/resources/outputBytes"):
        assert "512Mi" in messages[field] and "1Gi" in messages[field] and "expected integer" not in messages[field]


def test_no_raw_regular_expressions_in_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pattern failures (names, permissions, env names) are explained in words, never as a regex."""
    docs = minimal_docs()
    docs[0]["spec"]["env"] = {"1BAD": "x"}
    docs[3]["spec"]["permissions"] = ["Nodes Execute"]
    docs.append(doc("Role", "Bad_Name", {"permissions": ["jobs:read"]}))
    code, problems = _problems(write_bundle(tmp_path, "patterns", docs), capsys)
    assert code == 3 and len(problems) >= 3
    for p in problems:
        assert not re.search(r"\^|\$'|\[a-z|\\d|\{0,", p["message"]), p["message"]
    assert any("resource:action" in p["message"] for p in problems)


def test_references_to_invalid_documents_name_the_root_cause(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A reference to a document that failed the schema says it is invalid, not that it does not exist."""
    docs = minimal_docs()
    docs[0]["spec"]["resources"]["memory"] = "lots"  # the profile `small` fails the schema
    code, problems = _problems(write_bundle(tmp_path, "rooted", docs), capsys)
    assert code == 3
    refs = [p for p in problems if p["code"] == "ref/profile"]
    assert refs and all("is invalid (see its errors in" in p["message"] for p in refs)
    assert not any("'small' does not exist" in p["message"] for p in problems)


def test_all_stages_report_in_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Schema, reference and security problems of independent documents come out of one run together."""
    docs = minimal_docs()
    docs[1]["spec"]["version"] = "1.0"  # schema: the node
    docs[4]["spec"]["roles"] = ["runner", "ghost"]  # reference: the binding
    docs.append(doc("SandboxProfile", "wide", {**docs[0]["spec"], "capabilities": {"add": ["SYS_ADMIN"]}}))
    code, problems = _problems(write_bundle(tmp_path, "stages", docs), capsys)
    codes = {p["code"] for p in problems}
    assert code == 3
    assert {"schema/invalid-version", "ref/role", "security/capability-add"} <= codes, codes


def test_strict_makes_warnings_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle with only warnings is valid (0), and invalid (3) with --strict."""
    docs = minimal_docs()
    docs[2]["spec"]["nodes"] = ["echo", "nothing-*"]  # a glob that matches nothing: a warning
    path = write_bundle(tmp_path, "warned", docs)
    code, problems = _problems(path, capsys)
    assert code == 0 and [p["severity"] for p in problems] == ["warning"]
    assert _problems(path, capsys, "--strict")[0] == 3


def test_references_into_a_rejected_bundle_name_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """When bundle A is rejected, bundle B's references to A's definitions say A was rejected (the root cause)."""
    base = minimal_docs()
    base[0]["metadata"]["annotations"] = {"password": "hunter2"}  # a security error rejects bundle `base`
    write_bundle(tmp_path, "base", base[:1])
    write_bundle(tmp_path, "user", [doc("Node", "echo", {"version": "1.0.0", "profile": "small", "command": ["cat"]})])
    code, problems = _problems(tmp_path, capsys)
    assert code == 3
    refs = [p for p in problems if p["code"] == "ref/profile"]
    assert refs and refs[0]["message"] == ("SandboxProfile 'small' is defined by bundle 'base', which was rejected "
                                           "(see its errors)")
