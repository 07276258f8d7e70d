"""A real `onexd serve` in a subprocess on a temporary socket, state and policy directory; curl as the client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT, doc, write_bundle

ONEXD = str(Path(sys.executable).parent / "onexd")
SOCKET_GID = 4243  # the socket's group: other test uids get it as a supplementary group
OTHER_UIDS = (4242, 4244)


@dataclass
class Daemon:
    root: Path
    socket: Path
    policy_dir: Path
    state_dir: Path
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, wait: bool = True) -> None:
        with self.log.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([ONEXD, "serve", "--config", str(self.config)], stdout=log, stderr=log,
                                         cwd=ROOT, env={**os.environ, **self.env})
        if wait:
            deadline = time.monotonic() + 30
            while True:
                assert self.proc.poll() is None, f"onexd exited: {self.log.read_text()[-2000:]}"
                if self.socket.exists() and self.curl("GET", "/version")[0] == 200:
                    return
                assert time.monotonic() < deadline, "onexd did not come up"
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def curl(self, method: str, path: str, body: Any = None, uid: int | None = None, raw: bytes | None = None,
             timeout: float = 120) -> tuple[int, Any]:
        cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", str(self.socket), "-X", method,
               f"http://onexd{path}"]
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        if uid is not None:
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={SOCKET_GID}", *cmd]
        out = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False).stdout
        text, _, code = out.decode(errors="replace").rpartition("\n")
        try:
            parsed: Any = json.loads(text) if text.strip() and not path.endswith("/logs") and "logs?" not in path \
                else text
        except ValueError:
            parsed = text
        return int(code or 0), parsed

    def set_policy(self, bundle: str, rel: str, text: str) -> None:
        """Write a file atomically, as editors do (write a temp file, rename it over)."""
        target = self.policy_dir / bundle / rel
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(text)
        tmp.replace(target)

    def bump(self, bundle: str, version: str) -> None:
        manifest = yaml.safe_load((self.policy_dir / bundle / "bundle.yaml").read_text())
        manifest["spec"]["version"] = version
        self.set_policy(bundle, "bundle.yaml", yaml.safe_dump(manifest))


def bind_test_uids(policy_dir: Path, uids: tuple[int, ...] = OTHER_UIDS) -> None:
    """Binds the other test uids to a role that may run ad-hoc busybox jobs and read its own jobs."""
    write_bundle(policy_dir, "testers", [
        doc("Role", "tester", {"permissions": ["nodes:execute", "jobs:read", "jobs:cancel"],
                               "capabilities": ["adhoc-busybox"]}),
        doc("RoleBinding", "testers", {"roles": ["tester"],
                                       "subjects": [{"kind": "UnixUser", "name": str(u)} for u in uids]}),
    ])


def make_daemon(tmp_path: Path, backend: str = "docker", extra: dict[str, Any] | None = None,
                with_testers: bool = False) -> Daemon:
    root = tmp_path / "d"
    policy = root / "policies"
    shutil.copytree(EXAMPLES, policy)
    if with_testers:
        bind_test_uids(policy)
    staging = Path("/dev/shm") / f"onexd-daemon-{uuid.uuid4().hex[:10]}"
    # pytest's tmp directories are 0700: the socket lives where other test uids can reach it.
    sock_dir = Path(tempfile.mkdtemp(prefix="onexd-sock-"))
    sock_dir.chmod(0o711)
    config: dict[str, Any] = {
        "apiVersion": "onexd/v1", "kind": "DaemonConfig",
        "socket": {"path": str(sock_dir / "onexd.sock"), "mode": "0660", "group": str(SOCKET_GID)},
        "policyDir": str(policy), "stateDir": str(root / "state"),
        "runtime": {"backend": backend}, "secrets": {"stagingDir": str(staging)},
        "reload": {"debounceMs": 200},
        "concurrency": {"maxJobs": 4, "maxQueued": 100, "maxJobsPerPrincipal": 30},
        "auth": {"rateLimit": {"requestsPerMinute": 6000, "burst": 1000}},
    }
    for key, value in (extra or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = root / "onexd.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return Daemon(root=root, socket=sock_dir / "onexd.sock", policy_dir=policy, state_dir=root / "state", config=path,
                  log=root / "daemon.log", env={"DEMO_SECRET_API_TOKEN": "daemon-test-" + uuid.uuid4().hex})


def _finish(d: Daemon) -> None:
    """Stop (cleanly), check the socket and staging directory are gone/empty, remove what the test made."""
    if d.proc is not None:
        assert d.stop() == 0, d.log.read_text()[-2000:]
    assert not d.socket.exists(), "the socket was not removed on stop"
    shutil.rmtree(d.socket.parent, ignore_errors=True)
    staging = Path(yaml.safe_load(d.config.read_text())["secrets"]["stagingDir"])
    if staging.exists():
        assert list(staging.iterdir()) == []
        staging.rmdir()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = make_daemon(tmp_path, with_testers=True)
    d.start()
    yield d
    _finish(d)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory for tests that stop, kill and restart daemons themselves; all are cleaned up after."""
    made: list[Daemon] = []

    def make(**kw: Any) -> Daemon:
        d = make_daemon(tmp_path / f"d{len(made)}", **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        _finish(d)
