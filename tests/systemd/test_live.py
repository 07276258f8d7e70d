"""The shipped unit for real: systemd as PID 1 in a container, onexd installed as the operator guide says.

The container (image onexd/test-systemd) is a test harness for the unit, not a job container. The daemon inside
runs its jobs on the host's engine through the mounted socket, so it only runs jobs without host paths to mount
(a node without source code, an ad-hoc command): a bind mount's source would be a path inside this container.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from onexd.runtime.docker import DockerRuntime
from onexd.runtime.images import TEST_SYSTEMD, build_images
from onexd.spec import MANAGED_LABEL
from tests.conftest import ROOT, doc

pytestmark = [pytest.mark.docker, pytest.mark.systemd]

DOCKER_SOCKET = "/var/run/docker.sock"
BUNDLE = "/etc/onexd/policies.d/live"
SERVICE_DIRECTIVES = {  # `systemctl show` names and values of the shipped unit's hardening
    "User": "onexd", "Group": "onexd", "SupplementaryGroups": "docker", "NoNewPrivileges": "yes",
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "ProtectHostname": "yes", "ProtectClock": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectProc": "invisible", "ProcSubset": "pid",
    "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "RemoveIPC": "yes", "RestrictNamespaces": "yes",
    "CapabilityBoundingSet": "cap_chown cap_fowner", "AmbientCapabilities": "cap_chown cap_fowner",
    "IPAddressDeny": "0.0.0.0/0 ::/0", "IPAddressAllow": "127.0.0.0/8 ::1/128", "DevicePolicy": "closed",
    "KeyringMode": "private", "UMask": "0077", "WatchdogUSec": "30s", "Type": "notify", "NotifyAccess": "main",
    "SystemCallArchitectures": "native", "SystemCallErrorNumber": "1",
}


@dataclass
class Box:
    """The booted systemd container."""

    container_id: str

    def sh(self, script: str, user: str | None = None, check: bool = True, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", user, "--", "sh", "-c", script] if user else ["sh", "-c", script]
        proc = subprocess.run(["docker", "exec", self.container_id, *cmd], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, f"{script}: exit {proc.returncode}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        return proc

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def ctl(self, args: str, user: str = "alice", check: bool = True) -> Any:
        proc = self.sh(f"onexctl -o json {args}", user=user, check=check)
        return json.loads(proc.stdout) if check else proc

    def wait_for(self, script: str, timeout_s: float, user: str | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while self.sh(script, user=user, check=False).returncode != 0:
            assert time.monotonic() < deadline, f"not true within {timeout_s}s: {script}\n{self.journal()}"
            time.sleep(0.5)

    def journal(self) -> str:
        return self.sh("journalctl --no-pager -n 25 -u onexd.service -u onexd.socket", check=False).stdout

    def write(self, path: str, text: str) -> None:
        proc = subprocess.run(["docker", "exec", "-i", self.container_id, "sh", "-c",
                               f"mkdir -p \"$(dirname {path})\" && cat > {path}"],
                              input=text, text=True, capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr


def write_policy(box: Box, version: str, nodes: tuple[str, ...] = ("greet",), broken: bool = False) -> None:
    """The test bundle: alice may run its nodes and ad-hoc commands with profile `live`, and read the policy."""
    docs = [
        doc("SandboxProfile", "live", {
            "image": "onexd/runner-busybox", "user": "65534:65534",
            "tmpfs": [{"path": "/tmp", "size": "4Mi", "mode": "1777"}],
            "resources": {"memory": "64Mi", "cpus": 0.5, "pids": 32, "nofile": 64, "timeoutSeconds": 30,
                          "outputBytes": "64Ki"}}),
        *(doc("Node", n, {"version": "1.0.0", "profile": "live", "command": ["cat"]}) for n in nodes),
        doc("Capability", "live", {"nodes": list(nodes), "profiles": ["live"], "adhoc": True}),
        doc("Role", "live", {"permissions": ["nodes:execute", "jobs:read", "policy:read", "monitoring:read"],
                             "capabilities": ["live"]}),
        doc("RoleBinding", "live", {"roles": ["live"], "subjects": [{"kind": "UnixUser", "name": "alice"}]}),
    ]
    text = yaml.safe_dump_all(docs, sort_keys=False)
    box.write(f"{BUNDLE}/bundle.yaml", yaml.safe_dump(doc("Bundle", "live", {"version": version})))
    box.write(f"{BUNDLE}/policy.yaml", text.replace("kind: Capability", "kind: Capabilitee") if broken else text)


def guide_install_commands() -> str:
    """The first shell block of the operator guide's install section, verbatim."""
    guide = (ROOT / "docs/operator-guide.md").read_text()
    section = guide[guide.index("## 1. Install"):]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match
    return match.group(1)


def _tokens(values: dict[str, str | None]) -> dict[str, list[str]]:
    """Values as sorted words: systemd lists addresses and capabilities in an order of its own."""
    return {k: sorted((v or "").split()) for k, v in values.items()}


def _job_containers() -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={MANAGED_LABEL}=true"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """Boot onexd/test-systemd and install onexd into it as the operator guide's install section says."""
    build_images(DockerRuntime(), only=[TEST_SYSTEMD.name])
    wheels = tmp_path_factory.mktemp("wheels")  # prepared here: nothing in the container needs the network
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(wheels), str(ROOT),
                    "setuptools>=68", "wheel"], check=True, capture_output=True, timeout=600)
    wheels.chmod(0o755)
    gid = os.stat(DOCKER_SOCKET).st_gid
    run = subprocess.run([
        "docker", "run", "-d", "--name", f"onexd-test-systemd-{uuid.uuid4().hex[:8]}",
        "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns=host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock", "-e", "container=docker",
        "--network", "none", "-v", f"{DOCKER_SOCKET}:/run/docker.sock", "-v", f"{ROOT}:/src:ro",
        "-v", f"{wheels}:/wheels:ro", TEST_SYSTEMD.name], capture_output=True, text=True, check=True)
    b = Box(run.stdout.strip())
    try:
        deadline = time.monotonic() + 60
        while (state := b.sh("systemctl is-system-running --wait", check=False).stdout.strip()) in ("", "offline"):
            assert time.monotonic() < deadline, "systemd did not come up"  # the bus is not there yet
            time.sleep(0.2)
        assert state == "running", b.sh("systemctl --failed --no-pager", check=False).stdout
        assert "shared:" in b.sh("grep ' / / ' /proc/1/mountinfo").stdout  # the image's shared-root.service
        # The host's Docker socket group, so that the unit's SupplementaryGroups=docker reaches the engine.
        b.sh(f"getent group docker || groupadd -o -g {gid} docker")
        b.sh("mkdir /root/onexd && tar -C /src --exclude=./.venv --exclude=./.git -cf - . | tar -C /root/onexd -xf -")
        b.sh("useradd -m alice && useradd -m bob")
        # The operator guide's install section, typed as written (pip takes the wheels instead of an index).
        install = b.sh("cd /root/onexd && export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels && set -e\n"
                       + guide_install_commands(), timeout=600)
        assert "master key: created /etc/onexd/master-key.cred" in install.stdout
        write_policy(b, "1.0.0")
        yield b
        b.sh("systemctl stop onexd.socket onexd.service", check=False)
    finally:
        subprocess.run(["docker", "rm", "-f", b.container_id], capture_output=True, check=False)
    assert _job_containers() == []


def test_install_layout_and_master_key_credential(box: Box) -> None:
    """make install + systemd-sysusers + systemd-tmpfiles: user onexd in group docker, config readable by the
    group only, the socket's directory and socket open to group onexd, an encrypted 0600 master-key credential."""
    assert "docker" in box.sh("id -nG onexd").stdout.split()
    stat = "stat -c '%U:%G %a %F'"
    assert box.sh(f"{stat} /etc/onexd /etc/onexd/onexd.yaml /etc/onexd/master-key.cred /run/onexd "
                  "/run/onexd/onexd.sock").stdout.splitlines() == [
        "root:onexd 750 directory", "root:onexd 640 regular file", "root:root 600 regular file",
        "onexd:onexd 750 directory", "onexd:onexd 660 socket"]
    assert box.sh("systemd-creds decrypt --name=master-key /etc/onexd/master-key.cred - | wc -c").stdout.strip() \
        == "44"
    assert box.sh("systemctl is-active onexd.service", check=False).stdout.strip() == "inactive"


def test_socket_activation_by_a_group_member_and_refusal_of_others(box: Box) -> None:
    """The first onexctl call by a member of group onexd starts onexd.service and succeeds; a user outside the
    group is refused by the socket's mode."""
    assert box.ctl("version")["server"]["apiVersion"] == "onexd/v1"
    assert box.sh("systemctl is-active onexd.service").stdout.strip() == "active"
    bob = box.ctl("version", user="bob", check=False)
    assert bob.returncode != 0
    assert "ermission denied" in bob.stdout + bob.stderr


def test_jobs_run_under_every_hardening_directive(box: Box) -> None:
    """A node job and an ad-hoc job succeed through the activated socket while `systemctl show` confirms the
    shipped hardening and `systemd-analyze security` rates the live unit 2.0 or lower."""
    node = box.ctl("job run greet --input '{\"name\": \"live\"}' --wait")
    assert node["status"] == "succeeded", node
    adhoc = box.ctl("job run --profile live --wait -- echo adhoc-ok")
    assert adhoc["status"] == "succeeded", adhoc
    assert "adhoc-ok" in box.sh(f"onexctl job logs {adhoc['id']}", user="alice").stdout
    shown = box.show("onexd.service", *SERVICE_DIRECTIVES)
    assert _tokens({k: shown.get(k) for k in SERVICE_DIRECTIVES}) == _tokens(dict(SERVICE_DIRECTIVES))
    shown = box.show("onexd.service", "SystemCallFilter", "RestrictAddressFamilies")
    allowed = set(shown["SystemCallFilter"].split())
    assert {"fchown", "openat", "epoll_wait"} <= allowed
    assert not allowed & {"mount", "reboot", "init_module", "ptrace", "setrlimit", "settimeofday", "swapon"}
    assert sorted(shown["RestrictAddressFamilies"].split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    # The daemon got the decrypted master key as its credential, so it generated no key file of its own.
    box.sh("systemd-creds decrypt --name=master-key /etc/onexd/master-key.cred - "
           "| cmp - /run/credentials/onexd.service/master-key")
    assert box.sh("test -e /var/lib/onexd/master.key", check=False).returncode != 0
    box.sh("grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$(systemctl show -p MainPID --value onexd)/status")
    security = box.sh("systemd-analyze security onexd.service --no-pager", check=False).stdout
    match = re.search(r"Overall exposure level for onexd\.service: ([0-9.]+)", security)
    assert match, security[-1500:]
    assert float(match.group(1)) <= 2.0, security[-1500:]


def test_reload_applies_policy_and_a_broken_bundle_degrades_with_a_journal_warning(box: Box) -> None:
    """`systemctl reload onexd` reloads the policy (the daemon reports RELOADING then READY); a broken bundle
    keeps the service active but degraded, and `journalctl -p warning` shows the rejection."""
    before = box.show("onexd.service", "StatusText")["StatusText"]
    write_policy(box, "2.0.0", ("greet", "greet-two"))
    box.sh("systemctl reload onexd")
    box.wait_for("onexctl job run greet-two --input '{}' --wait", 30, user="alice")
    assert "Reloaded onexd" in box.sh("journalctl --no-pager -u onexd.service").stdout
    # After RELOADING=1 systemd shows the unit `reloading` until READY=1, whose STATUS names the new policy.
    after = box.show("onexd.service", "ActiveState", "StatusText")
    assert after["ActiveState"] == "active"
    assert after["StatusText"] != before and after["StatusText"].startswith("ok; policy "), (before, after)
    write_policy(box, "3.0.0", broken=True)
    box.sh("systemctl reload onexd")
    box.wait_for("! onexctl health", 30, user="alice")
    assert box.show("onexd.service", "ActiveState", "StatusText") == {
        "ActiveState": "active", "StatusText": f"degraded: live rejected; {after['StatusText'].split('; ')[1]}"}
    assert "degraded" in box.sh("onexctl health", user="alice", check=False).stdout
    warnings = box.sh("journalctl --no-pager -u onexd.service -p warning").stdout
    assert re.search(r"reject", warnings, re.IGNORECASE), box.journal()
    assert "live" in warnings
    write_policy(box, "4.0.0")
    box.sh("systemctl reload onexd")
    box.wait_for("onexctl health", 30, user="alice")


def test_watchdog_is_fed_and_a_silent_daemon_is_restarted(box: Box) -> None:
    """onexd feeds the watchdog (it outlives several WatchdogSec periods); once it stops (SIGSTOP) systemd
    aborts and restarts it. The period is shortened for the test by a runtime drop-in."""
    dropin = "/run/systemd/system/onexd.service.d/test-watchdog.conf"
    box.write(dropin, "[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n")
    try:
        box.sh("systemctl daemon-reload && systemctl restart onexd.service")
        pid = box.show("onexd.service", "MainPID")["MainPID"]
        time.sleep(7)  # more than three watchdog periods
        assert box.show("onexd.service", "MainPID", "NRestarts", "ActiveState") == \
            {"MainPID": pid, "NRestarts": "0", "ActiveState": "active"}
        box.sh(f"kill -STOP {pid}")
        box.wait_for(f"[ \"$(systemctl show -p MainPID --value onexd)\" != {pid} ] && "
                     "[ \"$(systemctl show -p MainPID --value onexd)\" != 0 ] && systemctl is-active -q onexd", 40)
        assert box.show("onexd.service", "NRestarts")["NRestarts"] == "1"
        assert "Watchdog timeout" in box.sh("journalctl --no-pager -u onexd.service").stdout
        box.wait_for("onexctl version", 30, user="alice")
    finally:
        box.sh(f"rm -f {dropin} && systemctl daemon-reload")
    box.sh("systemctl restart onexd.service")


def test_stop_drains_and_restart_keeps_the_state_with_its_owner_and_modes(box: Box) -> None:
    """`systemctl stop` lets a running job finish and removes the socket; after a start and a restart the jobs
    are still there; the state, keys and audit trail belong to onexd with no access for group or others."""
    job = box.ctl("job run --profile live -- sh -c 'sleep 3; echo drained'")
    box.wait_for(f"onexctl -o json job get {job['id']} | grep -q '\"running\"'", 30, user="alice")
    box.sh("systemctl stop onexd.socket onexd.service", timeout=90)
    assert box.sh("test -e /run/onexd/onexd.sock", check=False).returncode != 0
    assert box.sh("systemctl is-active onexd.service", check=False).stdout.strip() == "inactive"
    box.sh("systemctl start onexd.socket")
    assert box.ctl(f"job get {job['id']}")["status"] == "succeeded"
    box.sh("systemctl restart onexd.service")
    jobs = box.ctl("job list --limit 100")
    assert job["id"] in {j["id"] for j in jobs["jobs"]}
    assert box.sh("stat -c '%U:%G %a' /var/lib/onexd").stdout.strip() == "onexd:onexd 700"
    assert box.sh("find /var/lib/onexd ! -user onexd -o -perm /077 ! -type l").stdout == ""
    assert box.sh("stat -c '%U %a' /var/lib/onexd/keys/keystore.json /var/lib/onexd/audit "
                  "$(find /var/lib/onexd/audit -type f | head -1)").stdout.split("\n")[:3] == [
        "onexd 600", "onexd 700", "onexd 600"]
    assert _job_containers() == []
