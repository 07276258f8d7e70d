"""Regression tests for the hardening review (issue 12): each finding of the loader, the validator and the policy
lifecycle, named after it. Every hostile policy is refused with a rule code and exit 3, never a traceback."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from onexd.policy.manager import PolicyManager
from onexd.policy.pipeline import load_directory
from onexd.policy.store import BundleStore
from tests.conftest import BASELINE, EXAMPLES, ROOT, doc, minimal_docs, validate_json, write_bundle

Docs = list[dict[str, Any]]
# Docker's clone filter: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET must all be clear.
CLONE_NAMESPACE_MASK = 0x7E020000


def _profile(docs: Docs) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "SandboxProfile")["spec"]


def _codes(problems: list[dict[str, Any]]) -> set[str]:
    return {str(p["code"]) for p in problems}


def _rejected(path: Path, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """The rule codes of a policy that must be refused (exit 3)."""
    code, problems = validate_json(path, capsys)
    assert code == 3, problems
    return _codes(problems)


def _validate_subprocess(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onexd.cli.main", "policy", "validate", str(path), "-o", "json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


# --- 1: integers too large to convert or format, symbolic-link loops ------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("value", ["9" * 4400, "0x" + "f" * 3600, "-" + "1" * 5000, "9223372036854775808"])
def test_finding_01_huge_integer_is_rejected_not_a_traceback(value: str, tmp_path: Path) -> None:
    """A decimal of >= 4301 digits or a hex above 10^4300 is `yaml/invalid-number`, exit 3, no traceback."""
    text = yaml.safe_dump_all(minimal_docs(), sort_keys=False).replace("memory: 64Mi", f"memory: {value}")
    assert value in text
    write_bundle(tmp_path, "b", text)
    proc = _validate_subprocess(tmp_path / "b")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "yaml/invalid-number" in proc.stdout


@pytest.mark.integration
def test_finding_01_symlink_loop_is_rejected_not_a_traceback(tmp_path: Path) -> None:
    """A symbolic-link loop inside a bundle is `ref/path-escape`, exit 3, no traceback."""
    bundle = write_bundle(tmp_path, "b", minimal_docs())
    (bundle / "loop-a").symlink_to("loop-b")
    (bundle / "loop-b").symlink_to("loop-a")
    proc = _validate_subprocess(bundle)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ref/path-escape" in proc.stdout


def test_finding_01_node_source_through_a_link_loop_is_rejected(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A node whose source path is a link loop is refused as escaping the bundle."""
    docs = minimal_docs()
    docs[1]["spec"]["source"] = {"path": "code"}
    bundle = write_bundle(tmp_path, "b", docs)
    (bundle / "code").symlink_to("code")
    assert "ref/path-escape" in _rejected(bundle, capsys)


def test_finding_01_reload_applies_valid_changes_beside_a_hostile_bundle(tmp_path: Path) -> None:
    """A hostile bundle is rejected on reload while a valid change to another bundle is activated."""
    policy = tmp_path / "policies"
    shutil.copytree(EXAMPLES, policy)
    manager = PolicyManager(policy, BundleStore(tmp_path / "state" / "policy"))
    manager.reload("test")
    hello = policy / "hello" / "bundle.yaml"
    hello.write_text(hello.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    sandbox = policy / "data-job" / "policy.yaml"
    sandbox.write_text(sandbox.read_text().replace("memory: 256Mi", "memory: " + "9" * 4400))
    loop = policy / "data-job" / "nodes" / "loop"
    loop.symlink_to("loop")
    result = manager.reload("test")
    assert result.activated == ("hello",) and result.rejected == ("data-job",)
    assert manager.state.entries["hello"].version == "1.0.1"
    assert {"yaml/invalid-number", "ref/path-escape"} <= {p.code for p in manager.state.rejections["data-job"].problems}


# --- 2: every scan is linear ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content"), [
    ("notes.txt", "-eyJaaaa" * (128 * 1024)),
    ("big.yaml", "x: '" + "-eyJaaaa" * (120 * 1024) + "'\n"),
    ("ambiguous.yaml", "x: 1" + "_" * (1000 * 1024) + "x\n"),
    ("dots.txt", ".eyJ-" * (200 * 1024)),
])
def test_finding_02_hostile_text_validates_in_bounded_time(name: str, content: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A ~1 MiB file built to make the secret or scalar scans backtrack validates in seconds, not minutes."""
    write_bundle(tmp_path, "b", minimal_docs(), files={name: content})
    start = time.monotonic()
    code, problems = validate_json(tmp_path / "b", capsys)
    elapsed = time.monotonic() - start
    assert code in (0, 3), problems
    # Generous against a slow CI machine; before the fix these took 35 s to over 2 minutes.
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_finding_02_jwt_detector_still_finds_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The linear detector still finds a JWT-shaped string inside node code."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"
    docs = minimal_docs()
    docs[1]["spec"]["source"] = {"path": "code"}
    write_bundle(tmp_path, "b", docs, files={"code/main.py": f"TOKEN = '{token}'\n"})
    assert "security/secret-literal" in _rejected(tmp_path / "b", capsys)


# --- 3: seccomp profiles at least as strict as the deny-list --------------------------------------------------


def _with_seccomp(tmp_path: Path, profile: dict[str, Any]) -> Path:
    docs = minimal_docs()
    _profile(docs)["seccompProfile"] = "custom"
    docs.append(doc("SeccompProfile", "custom", {"profile": profile}))
    return write_bundle(tmp_path, "b", docs)


def _errno_profile(**extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}], **extra}


@pytest.mark.parametrize("action", ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"])
@pytest.mark.parametrize("syscall", ["unshare", "setns", "mount", "bpf", "keyctl", "ptrace", "userfaultfd",
                                     "perf_event_open", "clone3", "pivot_root", "kexec_load"])
def test_finding_03_seccomp_rule_letting_a_denylisted_syscall_through_is_rejected(
        syscall: str, action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ERRNO by default plus a rule that allows (or logs, traces, notifies) a deny-listed call is refused."""
    profile = _errno_profile()
    profile["syscalls"].append({"names": ["getpid", syscall], "action": action,
                                "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]})
    assert "security/seccomp-weak" in _rejected(_with_seccomp(tmp_path, profile), capsys)


def test_finding_03_seccomp_spec_allow_flag_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A free-form flag such as SECCOMP_FILTER_FLAG_SPEC_ALLOW is refused."""
    profile = _errno_profile(flags=["SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    assert _rejected(_with_seccomp(tmp_path, profile), capsys) & {"schema/invalid-value", "security/seccomp-weak"}


def test_finding_03_seccomp_errno_zero_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """defaultErrnoRet 0 (every refused call looks successful) is refused."""
    profile = _errno_profile(defaultErrnoRet=0)
    assert _rejected(_with_seccomp(tmp_path, profile), capsys) & {"schema/invalid-value", "security/seccomp-weak"}


def test_finding_03_seccomp_file_with_denylisted_rule_is_rejected(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The same floor applies to a profile read from a JSON file of the bundle."""
    import json

    docs = minimal_docs()
    _profile(docs)["seccompProfile"] = "custom"
    docs.append(doc("SeccompProfile", "custom", {"file": "seccomp.json"}))
    profile = _errno_profile()
    profile["syscalls"].append({"names": ["mount"], "action": "SCMP_ACT_ALLOW"})
    write_bundle(tmp_path, "b", docs, files={"seccomp.json": json.dumps(profile)})
    assert "security/seccomp-weak" in _rejected(tmp_path / "b", capsys)


def test_finding_03_clone_is_allowed_only_with_the_namespace_filter(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """clone without Docker's namespace-flag filter is refused; with it (as the baseline has) it passes."""
    bare = _errno_profile()
    bare["syscalls"].append({"names": ["clone"], "action": "SCMP_ACT_ALLOW"})
    assert "security/seccomp-weak" in _rejected(_with_seccomp(tmp_path / "bare", bare), capsys)
    filtered = _errno_profile()
    filtered["syscalls"].append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": CLONE_NAMESPACE_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
    code, problems = validate_json(_with_seccomp(tmp_path / "filtered", filtered), capsys)
    assert code == 0, problems


def test_finding_03_shipped_seccomp_profile_meets_the_floor(capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline's strict profile passes the deny-list check."""
    code, problems = validate_json(BASELINE, capsys)
    assert code == 0, problems


# --- 4: limits that stop limiting -----------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("cpus", 1e-10), ("cpus", 0.001), ("memory", 2**63 - 1), ("memory", 1024), ("outputBytes", "1024Ti"),
    ("outputBytes", 2**40), ("pids", 0), ("nofile", 2**31),
])
def test_finding_04_limit_outside_floor_or_ceiling_is_rejected(field: str, value: Any, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """cpus rounding to NanoCpus 0, a memory Docker reads as unlimited, 1024Ti of buffered output: refused."""
    docs = minimal_docs()
    _profile(docs)["resources"][field] = value
    assert "schema/invalid-value" in _rejected(write_bundle(tmp_path, "b", docs), capsys)


def test_finding_04_cpus_tiny_rounds_to_unlimited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cpus: 1e-10` (NanoCpus 0, i.e. no limit) is refused: the floor is 0.01."""
    docs = minimal_docs()
    _profile(docs)["resources"]["cpus"] = 1e-10
    assert "schema/invalid-value" in _rejected(write_bundle(tmp_path, "b", docs), capsys)


@pytest.mark.parametrize("user", ["4294967296:1", "1:4294967296", "2147483648:1000", "0001000:1000"])
def test_finding_04_user_out_of_range_is_rejected(user: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A uid or gid above 2^31-1 (that wraps, or that runc refuses) or with leading zeros is refused."""
    docs = minimal_docs()
    _profile(docs)["user"] = user
    assert _rejected(write_bundle(tmp_path, "b", docs), capsys) & {"schema/invalid-value", "security/limit-range"}


def test_finding_04_tmpfs_size_has_a_ceiling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tmpfs larger than the ceiling is refused."""
    docs = minimal_docs()
    _profile(docs)["tmpfs"][0]["size"] = "1024Ti"
    assert "schema/invalid-value" in _rejected(write_bundle(tmp_path, "b", docs), capsys)


# --- 5: reserved paths compared as raw strings ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["//proc", "/./proc", "/../proc", "//sys", "//dev", "//etc", "//run/secrets",
                                  "/tmp/", "/tmp/../proc", "/tmp//x", "/proc", "/run", "/app", "/etc/x"])
def test_finding_05_tmpfs_over_reserved_or_unnormalized_path_is_rejected(
        path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Non-normalized spellings are refused outright; normalized ones are compared against reserved paths."""
    docs = minimal_docs()
    _profile(docs)["tmpfs"][0]["path"] = path
    assert _rejected(write_bundle(tmp_path, "b", docs), capsys) & {"schema/invalid-value", "security/tmpfs-path"}


def test_finding_05_two_tmpfs_at_one_path_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two tmpfs mounts at the same path are refused."""
    docs = minimal_docs()
    _profile(docs)["tmpfs"].append(dict(_profile(docs)["tmpfs"][0]))
    assert "security/tmpfs-path" in _rejected(write_bundle(tmp_path, "b", docs), capsys)


# --- 6: hard links, YAML in node code -------------------------------------------------------------------------


def test_finding_06_hard_link_to_a_file_outside_the_bundle_is_rejected(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A hard link (another name of a file outside the bundle) is refused like an escaping symlink."""
    outside = tmp_path / "outside-secret"
    outside.write_text("not policy\n")
    docs = minimal_docs()
    docs[1]["spec"]["source"] = {"path": "code"}
    bundle = write_bundle(tmp_path / "p", "b", docs, files={"code/main.py": "print(1)\n"})
    os.link(outside, bundle / "code" / "leak.txt")
    assert "ref/path-escape" in _rejected(bundle, capsys)


def test_finding_06_yaml_in_node_source_is_scanned_for_secrets(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A private key in a YAML file of a node's code directory is found."""
    docs = minimal_docs()
    docs[1]["spec"]["source"] = {"path": "code"}
    pem = "key: |\n  -----BEGIN RSA PRIVATE KEY-----\n  MIIB\n  -----END RSA PRIVATE KEY-----\n"
    write_bundle(tmp_path, "b", docs, files={"code/config.yaml": pem, "code/main.py": "print(1)\n"})
    assert "security/secret-literal" in _rejected(tmp_path / "b", capsys)


# --- 7: egress rules validated at load ------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [{"cidr": "10.0.0.0/33"}, {"cidr": "300.0.0.0/8"}, {"cidr": "10.0.0.1/8"},
                                  {"cidr": "::1/129"}, {"cidr": "1.2.3/8"}, {"host": "-bad-.example"}])
def test_finding_07_malformed_egress_rule_is_rejected_at_load(rule: dict[str, Any], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A CIDR the proxy could not parse (or a malformed host) fails validation instead of every connection."""
    docs = minimal_docs()
    docs.append(doc("NetworkZone", "web", {"mode": "egress", "egress": [{**rule, "ports": [443]}]}))
    assert "schema/invalid-value" in _rejected(write_bundle(tmp_path, "b", docs), capsys)


# --- 17: downgrade by removal ---------------------------------------------------------------------------------


def test_finding_17_removed_bundle_cannot_come_back_older(tmp_path: Path) -> None:
    """Delete a bundle, reload, restore an older version: a downgrade, unless rolled back explicitly."""
    policy = tmp_path / "policies"
    shutil.copytree(EXAMPLES, policy)
    old = tmp_path / "hello-1.0.0"
    shutil.copytree(policy / "hello", old)
    store_root = tmp_path / "state" / "policy"
    manager = PolicyManager(policy, BundleStore(store_root))
    manager.reload("test")
    manifest = policy / "hello" / "bundle.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    assert manager.reload("test").activated == ("hello",)
    shutil.rmtree(policy / "hello")
    assert manager.reload("test").removed == ("hello",)
    # A restart in between forgets nothing either: the history lives in the state directory.
    manager = PolicyManager(policy, BundleStore(store_root))
    shutil.copytree(old, policy / "hello")
    result = manager.reload("test")
    assert result.rejected == ("hello",)
    assert "version/downgrade" in {p.code for p in manager.state.rejections["hello"].problems}
    result = manager.reload("test", allow_rollback=frozenset({"hello"}))
    assert result.activated == ("hello",) and manager.state.entries["hello"].version == "1.0.0"


# --- 19: rejection messages never echo the rejected value -----------------------------------------------------


@pytest.mark.parametrize(("where", "value"), [
    ("secret-key", "hunter2!Sup3rSecret"), ("version", "hunter2-!"), ("name", "Hunter2Secret"),
    ("ambiguous", "0123456789"), ("kind", "Hunter2Kind"), ("api", "hunter2/v9"),
])
def test_finding_19_rejection_does_not_echo_the_value(where: str, value: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A password put in the wrong field appears in no message: not in validate, not in the reload status."""
    docs = copy.deepcopy(minimal_docs())
    docs.append(doc("SecretSource", "vault", {"type": "encrypted"}))
    docs.append(doc("Secret", "db", {"source": "vault", "key": "db"}))
    if where == "secret-key":
        docs[-1]["spec"]["key"] = value
    elif where == "version":
        docs[1]["spec"]["version"] = value
    elif where == "name":
        docs[1]["metadata"]["name"] = value
    elif where == "ambiguous":
        docs[-1]["spec"]["key"] = "PLACEHOLDER"
    elif where == "kind":
        docs[-1]["kind"] = value
    else:
        docs[-1]["apiVersion"] = value
    text = yaml.safe_dump_all(docs, sort_keys=False).replace("key: PLACEHOLDER", f"key: {value}")
    policy = tmp_path / "policies"
    write_bundle(policy, "b", text)
    code, out = validate_json(policy / "b", capsys)
    assert code == 3
    assert value not in str(out)
    manager = PolicyManager(policy, BundleStore(tmp_path / "state"))
    manager.reload("test")
    assert value not in str(manager.state.rejections["b"].as_dict())


# --- 21: node copies addressed by every file ------------------------------------------------------------------


def test_finding_21_node_code_differing_only_in_signature_gets_its_own_copy(tmp_path: Path) -> None:
    """Two nodes whose trees differ only in a root signature.jws have different content addresses."""
    docs = minimal_docs()
    docs.append(doc("Node", "echo2", {"version": "1.0.0", "profile": "small", "command": ["cat"],
                                      "source": {"path": "code2"}}))
    docs[1]["spec"]["source"] = {"path": "code1"}
    docs[2]["spec"]["nodes"] = ["echo", "echo2"]
    write_bundle(tmp_path, "b", docs, files={"code1/main.py": "print(1)\n", "code2/main.py": "print(1)\n",
                                             "code2/signature.jws": "not a signature, node data\n"})
    ev = load_directory(tmp_path / "b")
    assert ev.ok and ev.snapshot is not None, ev.all_problems()
    nodes = ev.snapshot.nodes
    assert nodes["echo"].source_digest != nodes["echo2"].source_digest


def test_finding_01_unforeseen_loader_failure_rejects_only_that_bundle(tmp_path: Path) -> None:
    """A failure inside parse_bundle (here: a broken limits object) becomes a rejection with a rule code."""
    from onexd.policy.loader import LoadLimits, parse_bundle_contained
    from onexd.policy.schema import SchemaSet

    bundle = write_bundle(tmp_path, "b", minimal_docs())
    broken = LoadLimits(yaml=None)  # type: ignore[arg-type]
    parsed = parse_bundle_contained(bundle, "b", SchemaSet(), broken)
    assert [p.code for p in parsed.problems] == ["bundle/unreadable-file"]
