"""The offline `onexd` tools an operator meets first (issue 13): no key material created behind their back, policy
paths validated together, and clear errors instead of tracebacks. Through the installed program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onexd.keys.master import MasterKeyMissing, load_existing_master_key
from tests.conftest import BASELINE, EXAMPLES, ROOT, doc, write_bundle

ONEXD = str(Path(sys.executable).parent / "onexd")
REQUESTS = ROOT / "examples" / "requests"


def _onexd(*args: str, env: dict[str, str] | None = None, stdin: str = "",
           cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEXD_") and k != "CREDENTIALS_DIRECTORY"}
    return subprocess.run([ONEXD, *args], capture_output=True, text=True, check=False, timeout=60, cwd=cwd,
                          input=stdin, env={**clean, **(env or {})})


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.integration
def test_secret_commands_without_a_master_key_write_nothing(tmp_path: Path) -> None:
    """secret set/list and audit verify without a master key stop with exit 2, say where the key is looked
    for, and write nothing (no master.key, no store, no keystore)."""
    state = tmp_path / "state"
    (state / "audit").mkdir(parents=True)
    (state / "keys").mkdir()
    (state / "keys" / "keystore.json").write_text('{"keys": []}')
    before = _tree(state)
    for args in (["secret", "set", "vault", "db", "--state-dir", str(state)],
                 ["secret", "list", "--state-dir", str(state)],
                 ["audit", "verify", "--state-dir", str(state)]):
        proc = _onexd(*args, stdin="s3cret\n")
        assert proc.returncode == 2, proc.stderr
        assert "no master key" in proc.stderr and "ONEXD_MASTER_KEY" in proc.stderr
        assert "master.key" in proc.stderr and "Traceback" not in proc.stderr
        assert _tree(state) == before


@pytest.mark.integration
def test_secret_commands_work_with_the_master_key(tmp_path: Path) -> None:
    """With ONEXD_MASTER_KEY, secret set stores the value (encrypted) and list names it; no key file appears."""
    state = tmp_path / "state"
    state.mkdir()
    env = {"ONEXD_MASTER_KEY": "a-master-key-of-enough-length"}
    assert _onexd("secret", "set", "vault", "db", "--state-dir", str(state), env=env, stdin="pw\n").returncode == 0
    listed = _onexd("secret", "list", "--state-dir", str(state), env=env)
    assert listed.stdout.split() == ["vault/db"]
    assert not (state / "master.key").exists() and b"pw" not in (state / "secrets" / "store.json").read_bytes()


@pytest.mark.integration
def test_a_mistyped_state_dir_is_an_error(tmp_path: Path) -> None:
    """--state-dir naming a missing directory is exit 2 and creates nothing."""
    missing = tmp_path / "stat"
    for args in (["secret", "list"], ["secret", "set", "s", "k"], ["audit", "verify"]):
        proc = _onexd(*args, "--state-dir", str(missing), env={"ONEXD_MASTER_KEY": "x" * 20}, stdin="v")
        assert proc.returncode == 2 and "no such state directory" in proc.stderr
        assert not missing.exists()


def test_offline_key_lookup_reads_the_unit_credential_file(tmp_path: Path) -> None:
    """The file the unit loads as the credential is read directly; nothing found raises MasterKeyMissing."""
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(MasterKeyMissing):
        load_existing_master_key(state, {}, tmp_path / "absent")
    cred = tmp_path / "master-key"
    cred.write_bytes(b"credential-bytes-long-enough\n")
    from_file = load_existing_master_key(state, {}, cred)
    via_systemd = load_existing_master_key(state, {"CREDENTIALS_DIRECTORY": str(tmp_path)}, tmp_path / "absent")
    assert from_file.key == via_systemd.key and list(state.iterdir()) == []


def _custom_bundle(root: Path) -> Path:
    """A bundle that uses the baseline's `developer` role and `strict` profile (with its seccomp filter)."""
    return write_bundle(root, "ci-team", [
        doc("Node", "lint", {"version": "1.0.0", "profile": "strict", "command": ["true"]}),
        doc("Capability", "run-lint", {"nodes": ["lint"], "profiles": ["strict"]}),
        doc("RoleBinding", "ci-devs", {"roles": ["developer"], "subjects": [{"kind": "UnixGroup", "name": "ci"}]}),
    ])


@pytest.mark.integration
def test_validate_merges_paths_like_the_daemon(tmp_path: Path) -> None:
    """A bundle reusing baseline roles and profiles is invalid alone but valid beside policies/baseline."""
    bundle = _custom_bundle(tmp_path)
    alone = _onexd("policy", "validate", str(bundle))
    assert alone.returncode == 3
    together = _onexd("policy", "validate", str(BASELINE / "baseline"), str(bundle))
    assert together.returncode == 0, together.stdout + together.stderr
    assert "ci-team@1.0.0" in together.stderr and "baseline@1.0.0" in together.stderr
    with_dir = _onexd("policy", "validate", str(BASELINE), str(bundle), "-o", "json")
    assert with_dir.returncode == 0 and json.loads(with_dir.stdout) == []


@pytest.mark.integration
def test_validate_and_explain_missing_paths_are_usage_errors(tmp_path: Path) -> None:
    """A path that does not exist is exit 2 (usage), not 3 (invalid policy)."""
    proc = _onexd("policy", "validate", str(BASELINE), str(tmp_path / "nope"))
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr
    explain = _onexd("policy", "explain", "--policy-dir", str(tmp_path / "nope"), "--as", "UnixUser:root",
                     str(REQUESTS / "hello.json"))
    assert explain.returncode == 2


@pytest.mark.integration
def test_sign_validates_in_the_context_of_the_policy_dir(tmp_path: Path) -> None:
    """policy sign DIR --policy-dir D signs a bundle that is valid beside D; without D it refuses, writing nothing."""
    bundle = _custom_bundle(tmp_path / "work")
    keys = tmp_path / "keys"
    keys.mkdir()
    assert _onexd("policy", "keygen", str(keys / "ops.pem")).returncode == 0
    alone = _onexd("policy", "sign", str(bundle), "--key", str(keys / "ops.pem"))
    assert alone.returncode == 3 and not (bundle / "signature.jws").exists()
    signed = _onexd("policy", "sign", str(bundle), "--key", str(keys / "ops.pem"), "--policy-dir", str(BASELINE))
    assert signed.returncode == 0, signed.stdout + signed.stderr
    check = _onexd("policy", "validate", str(BASELINE), str(bundle), "--trust", str(keys / "ops.pem.pub"),
                   "-o", "json")
    signature_problems = {(p["file"].split("/")[-2], p["code"]) for p in json.loads(check.stdout)
                          if p["code"].startswith("signature/")}
    assert (bundle / "signature.jws").is_file()
    assert signature_problems == {("baseline", "signature/missing")}  # the unsigned baseline only
    assert _onexd("policy", "sign", str(tmp_path / "nope"), "--key", str(keys / "ops.pem")).returncode == 2


@pytest.mark.integration
def test_keygen_into_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    """keygen into a directory that does not exist: exit 2 and what to do, no traceback."""
    proc = _onexd("policy", "keygen", str(tmp_path / "secure" / "ops.pem"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
def test_run_with_bad_input_is_a_usage_error() -> None:
    """onexd run --input 'bad': exit 2 and a message naming --input, no traceback (checked before any engine)."""
    proc = _onexd("run", "--policy-dir", str(EXAMPLES), "hello", "--input", "bad")
    assert proc.returncode == 2 and "--input is not JSON" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.integration
def test_explain_never_says_allowed_with_a_failing_exit() -> None:
    """An allowed target with input failing its schema prints INVALID INPUT (exit 3), never ALLOWED."""
    proc = _onexd("policy", "explain", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root",
                  str(REQUESTS / "hello-bad-input.json"))
    assert proc.returncode == 3
    assert "ALLOWED" not in proc.stdout and proc.stdout.startswith("INVALID INPUT")


@pytest.mark.integration
def test_schemas_without_out_print_instead_of_writing(tmp_path: Path) -> None:
    """policy schemas without --out prints every schema as JSON and writes nothing in the current directory."""
    proc = _onexd("policy", "schemas", cwd=tmp_path)
    assert proc.returncode == 0 and list(tmp_path.iterdir()) == []
    schemas = json.loads(proc.stdout)
    assert "Node.schema.json" in schemas or any(name.endswith(".json") for name in schemas)
    written = _onexd("policy", "schemas", "--out", str(tmp_path / "s"))
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(schemas) and written.returncode == 0


@pytest.mark.integration
def test_version_is_fast() -> None:
    """onexd --version answers in under 0.2 s (best of three: it loads no library)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        proc = _onexd("--version")
        best = min(best, time.perf_counter() - started)
        assert proc.stdout.startswith("onexd ")
    assert best < 0.2, f"{best:.3f} s"

