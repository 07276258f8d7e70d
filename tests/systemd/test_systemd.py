"""systemd integration: the units verify and are hardened; sd_notify and socket activation work for real."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import Daemon

UNITS = ROOT / "systemd"
ONEXD = str(Path(sys.executable).parent / "onexd")


@pytest.mark.integration
def test_units_verify_without_a_word(tmp_path: Path) -> None:
    """`systemd-analyze verify` prints nothing for both units, with the executable staged at ExecStart's path."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for directory in ("usr/bin", "bin", "etc/systemd/system"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/kill", root / "bin/kill")
    (root / "usr/bin/onexd").write_text("#!/bin/sh\n")
    (root / "usr/bin/onexd").chmod(0o755)
    for unit in ("onexd.service", "onexd.socket"):
        shutil.copy(UNITS / unit, root / "etc/systemd/system" / unit)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "onexd.service", "onexd.socket"],
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.integration
def test_service_exposure_is_at_most_2() -> None:
    """`systemd-analyze security --offline=yes` rates the service's exposure 2.0 or lower."""
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNITS / "onexd.service")],
                          capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for onexd\.service: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout[-500:] + proc.stderr
    assert float(match.group(1)) <= 2.0


@pytest.mark.integration
def test_sysusers_and_tmpfiles_parse() -> None:
    """The sysusers and tmpfiles snippets are accepted by systemd's own tools (dry runs, nothing created)."""
    tmpfiles = subprocess.run(["systemd-tmpfiles", "--cat-config"], capture_output=True, text=True, check=False)
    assert tmpfiles.returncode == 0
    for line in (UNITS / "onexd.sysusers").read_text().splitlines():
        assert not line.strip() or line.startswith("#") or line.split()[0] in ("u", "g", "m")
    for line in (UNITS / "onexd.tmpfiles").read_text().splitlines():
        assert not line.strip() or line.startswith("#") or line.split()[0] in ("d", "z")


def _recv(sock: socket.socket, want: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(message)
        if want in message:
            return message
    raise AssertionError(f"no {want!r} in {seen}")


@pytest.mark.integration
def test_sd_notify_ready_reloading_watchdog_stopping(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """With NOTIFY_SOCKET set: READY=1 at start, RELOADING=1 with MONOTONIC_USEC on SIGHUP (then READY=1),
    WATCHDOG=1 within the interval, STOPPING=1 on SIGTERM."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        d = daemons(backend="fake")
        d.env.update(NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000")
        d.start()
        assert "STATUS=ok" in _recv(sock, "READY=1", 10)
        assert _recv(sock, "WATCHDOG=1", 1.5)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)
        reloading = _recv(sock, "RELOADING=1", 5)
        assert re.search(r"MONOTONIC_USEC=\d+", reloading)
        assert _recv(sock, "READY=1", 5)
        d.proc.send_signal(signal.SIGTERM)
        assert _recv(sock, "STOPPING=1", 10)
        assert d.proc.wait(timeout=30) == 0
        d.proc = None
    finally:
        sock.close()


@pytest.mark.integration
def test_socket_activation_serves_on_the_passed_socket(daemons: Callable[..., Daemon], tmp_path: Path) -> None:
    """Under `systemd-socket-activate -l SOCKET onexd serve ...` the daemon answers on the socket it was given,
    and leaves that socket in place when it stops."""
    d = daemons(backend="fake")
    activated = tmp_path / "activated.sock"
    proc = subprocess.Popen(["systemd-socket-activate", "-l", str(activated), ONEXD, "serve", "--config",
                             str(d.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not activated.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        out = subprocess.run(["curl", "-s", "--max-time", "30", "--unix-socket", str(activated),
                              "http://onexd/version"], capture_output=True, text=True, check=False).stdout
        assert '"apiVersion":"onexd/v1"' in out
        assert not d.socket.exists()  # the configured path was not bound: the passed socket was used
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert d.proc is None


@pytest.mark.parametrize(("variable", "field", "leaf"), [("STATE_DIRECTORY", "stateDir", "state"),
                                                          ("RUNTIME_DIRECTORY", "socket.path", "onexd.sock")])
def test_unit_directories_fill_in_what_the_config_leaves_unset(tmp_path: Path, variable: str, field: str,
                                                               leaf: str) -> None:
    """$STATE_DIRECTORY and $RUNTIME_DIRECTORY apply when onexd.yaml does not set the path (the file wins)."""
    from onexd.configfile import load_config

    config = tmp_path / "onexd.yaml"
    config.write_text("apiVersion: onexd/v1\nkind: DaemonConfig\n")
    fallback = {field: str(tmp_path / leaf)}
    loaded = load_config(config, {}, fallback)
    value = loaded.stateDir if field == "stateDir" else loaded.socket.path
    assert value == str(tmp_path / leaf)
    config.write_text("apiVersion: onexd/v1\nkind: DaemonConfig\nstateDir: /srv/s\nsocket: {path: /srv/s.sock}\n")
    loaded = load_config(config, {}, fallback)
    assert (loaded.stateDir if field == "stateDir" else loaded.socket.path).startswith("/srv/s")
    assert variable


@pytest.mark.integration
def test_make_install_puts_everything_where_a_distribution_would(tmp_path: Path) -> None:
    """`make install PREFIX DESTDIR`: the program in a private venv with bin/ links (shebangs rewritten to
    the final place), units, sysusers and tmpfiles snippets, a commented onexd.yaml and the baseline policy."""
    stage = tmp_path / "stage"
    proc = subprocess.run(["make", "install", f"DESTDIR={stage}", "PREFIX=/usr", f"PYTHON={sys.executable}"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    usr = stage / "usr"
    assert (usr / "bin/onexd").readlink() == Path("../lib/onexd/bin/onexd")
    assert (usr / "lib/onexd/bin/onexd").read_text().splitlines()[0] == "#!/usr/lib/onexd/bin/python"
    for path in ("lib/systemd/system/onexd.service", "lib/systemd/system/onexd.socket", "lib/sysusers.d/onexd.conf",
                 "lib/tmpfiles.d/onexd.conf", "share/doc/onexd/operator-guide.md"):
        assert (usr / path).is_file(), path
    assert "ExecStart=/usr/bin/onexd serve" in (usr / "lib/systemd/system/onexd.service").read_text()
    assert (stage / "etc/onexd/onexd.yaml").is_file()
    assert (stage / "etc/onexd/policies.d/baseline/bundle.yaml").is_file()
    # The staged program runs (its venv is self-contained; only the shebang names the final place).
    version = subprocess.run([str(usr / "lib/onexd/bin/python"), "-m", "onexd.cli.main", "--version"],
                             capture_output=True, text=True, check=False)
    assert version.stdout.startswith("onexd ")
