"""`onexd k8s render` and `onexd k8s seccomp`: output, validation of what they print, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from onexd.engine.translate import seccomp_json
from onexd.runtime.k8s_render import restricted_violations
from tests.conftest import BASELINE, EXAMPLES, run_cli
from tests.engine.test_translate import _snapshot
from tests.runtime.test_k8s_manifests import validate_strict


def _policy_profile() -> dict[str, object]:
    """The baseline's strict profile as policy holds it (and as the Docker backend applies it)."""
    snapshot = _snapshot(BASELINE)
    profile: dict[str, object] = json.loads(seccomp_json(dict(snapshot.seccomp["onexd-strict"])))
    return profile


def _documents(out: str) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(out) if d is not None]


@pytest.mark.parametrize(("node", "data"), [("hello", {"name": "k8s"}), ("wordcount", {"text": "a b"})])
def test_render_of_each_example_node_validates_and_passes_restricted(node: str, data: dict[str, str],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Each example node renders (exit 0) to objects that validate strictly; its Pod passes "restricted"."""
    code, out, _ = run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root", node,
                            "--input", json.dumps(data), "--namespace", "team-a"], capsys)
    assert code == 0
    docs = _documents(out)
    for doc in docs:
        validate_strict(doc)
        assert doc["metadata"]["namespace"] == "team-a"  # type: ignore[index]
    job = next(d for d in docs if d["kind"] == "Job")
    assert restricted_violations(job["spec"]["template"]["spec"]) == []  # type: ignore[index]


def test_render_of_an_adhoc_job(capsys: pytest.CaptureFixture[str]) -> None:
    """An ad-hoc command renders too: the argv is the container's command."""
    code, out, _ = run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root",
                            "--profile", "busybox-tiny", "--", "sh", "-c", "id"], capsys)
    assert code == 0
    job = next(d for d in _documents(out) if d["kind"] == "Job")
    validate_strict(job)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "id"]  # type: ignore[index]


def test_render_never_prints_a_secret_value(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The Secret is rendered with its key names and a redacted value, whatever the source holds."""
    monkeypatch.setenv("ONEXD_DEMO_SECRET_API_TOKEN", "very-secret-token")
    code, out, _ = run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root", "wordcount",
                            "--input", '{"text": "x"}'], capsys)
    assert code == 0 and "very-secret-token" not in out and "dmVyeS1zZWNyZXQtdG9rZW4" not in out
    secret = next(d for d in _documents(out) if d["kind"] == "Secret")
    assert list(secret["data"]) == ["api-token"]  # type: ignore[call-overload]


def test_render_denied_exits_3_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """A denied request: exit 3 (as explain), the reasons on stderr, no object on stdout."""
    code, out, err = run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES), "--as", "ApiKey:deploy-bot",
                              "wordcount", "--input", '{"text": "x"}'], capsys)
    assert code == 3 and out == "" and "DENIED" in err and "no capability" in err


def test_render_invalid_input_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Input failing the node's inputSchema: exit 3, as explain."""
    code, out, err = run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES), "--as", "UnixUser:root",
                              "wordcount", "--input", '{"bad": 1}'], capsys)
    assert code == 3 and out == "" and "required" in err


def test_render_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """No node, or --input that is not JSON, is a usage error."""
    assert run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES)], capsys)[0] == 2
    assert run_cli(["k8s", "render", "--policy-dir", str(EXAMPLES), "hello", "--input", "{"], capsys)[0] == 2


def test_seccomp_writes_the_kubelet_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each custom profile in use is written under the content-named file the Pods reference."""
    code, _, _ = run_cli(["k8s", "seccomp", "--policy-dir", str(BASELINE), "--out", str(tmp_path)], capsys)
    assert code == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("onexd-strict-") and files[0].endswith(".json")
    assert json.loads((tmp_path / files[0]).read_text()) == _policy_profile()


def test_seccomp_spo_writes_seccompprofile_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format spo: a Security Profiles Operator SeccompProfile per custom profile, same rules."""
    code, _, _ = run_cli(["k8s", "seccomp", "--policy-dir", str(BASELINE), "--out", str(tmp_path), "--format",
                          "spo", "--namespace", "team-a"], capsys)
    assert code == 0
    (path,) = tmp_path.iterdir()
    (obj,) = _documents(path.read_text())
    original = _policy_profile()
    assert obj["kind"] == "SeccompProfile" and obj["metadata"]["namespace"] == "team-a"  # type: ignore[index]
    assert obj["spec"]["defaultAction"] == original["defaultAction"]  # type: ignore[index]
    assert obj["spec"]["syscalls"] == original["syscalls"]  # type: ignore[index]
