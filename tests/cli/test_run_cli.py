"""`onexd run` and `onexd image build` end to end, as a user runs them, on the real engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.docker
ONEXD = str(Path(sys.executable).parent / "onexd")


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    staging = Path("/dev/shm") / f"onexd-cli-{uuid.uuid4().hex[:10]}"
    yield tmp_path / "state", staging
    leftovers = list(staging.iterdir()) if staging.exists() else []
    if staging.exists():
        staging.rmdir()
    assert leftovers == []


def _run(args: list[str], dirs: tuple[Path, Path], env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    state, staging = dirs
    return subprocess.run([ONEXD, "run", "--policy-dir", str(EXAMPLES), "--state-dir", str(state), "--staging-dir",
                           str(staging), *args], capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_example_node_succeeds_with_exit_0(dirs: tuple[Path, Path]) -> None:
    """The hello node prints its greeting; the JSON record says succeeded with the policy digest."""
    proc = _run(["hello", "--input", '{"name": "CI"}', "-o", "json"], dirs)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "succeeded" and json.loads(record["stdout"]) == {"greeting": "Hello, CI!"}
    assert len(record["policy"]["digest"]) == 64


def test_secret_node_gets_its_file_and_its_value_is_masked(dirs: tuple[Path, Path]) -> None:
    """wordcount reads /run/secrets/api-token: the hash matches, the value itself is masked in output."""
    import hashlib

    token = "canary-" + uuid.uuid4().hex
    proc = _run(["wordcount", "--input", json.dumps({"text": f"x {token} x"}), "-o", "json"], dirs,
                env={"DEMO_SECRET_API_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    assert token not in proc.stdout and token not in proc.stderr
    out = json.loads(json.loads(proc.stdout)["stdout"])
    assert out["tokenSha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert ["***", 1] in out["top"]


def test_unbound_user_gets_exit_3(dirs: tuple[Path, Path]) -> None:
    """A principal no RoleBinding names is denied: exit 3 with the reason."""
    proc = _run(["--as", "UnixUser:4242", "hello", "--input", '{"name": "x"}'], dirs)
    assert proc.returncode == 3 and "no RoleBinding" in proc.stdout


def test_invalid_input_gets_exit_3(dirs: tuple[Path, Path]) -> None:
    """Input failing the node's inputSchema: exit 3 naming the field."""
    proc = _run(["hello", "--input", '{"name": ""}'], dirs)
    assert proc.returncode == 3 and "invalid input" in proc.stderr


def test_failing_command_gets_exit_1(dirs: tuple[Path, Path]) -> None:
    """An ad-hoc command exiting 7 is `failed`, exit 1, with exitCode 7 in the record."""
    proc = _run(["--profile", "busybox-tiny", "-o", "json", "--", "sh", "-c", "exit 7"], dirs)
    assert proc.returncode == 1 and json.loads(proc.stdout)["exitCode"] == 7


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_and_leaves_nothing_behind(dirs: tuple[Path, Path], sig: signal.Signals) -> None:
    """SIGINT or SIGTERM during a job: it is cancelled (exit 1) and no container remains."""
    state, staging = dirs
    proc = subprocess.Popen([ONEXD, "run", "--policy-dir", str(EXAMPLES), "--state-dir", str(state),
                             "--staging-dir", str(staging), "--profile", "busybox-tiny", "-o", "json", "--",
                             "sleep", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    client = docker.APIClient(version="auto")
    try:
        deadline = time.monotonic() + 30
        while not client.containers(filters={"label": "onexd.managed=true", "status": "running"}):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, err
        assert json.loads(out)["status"] == "cancelled"
        assert client.containers(all=True, filters={"label": "onexd.managed=true"}) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()


def test_image_build_is_idempotent() -> None:
    """A second build finds both images up to date by their recipe label."""
    proc = subprocess.run([ONEXD, "image", "build"], capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("up-to-date") == 2
