"""onexctl against a real daemon (fake runtime backend: the client and API are what is tested here)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon.conftest import Daemon

pytestmark = pytest.mark.integration

ONEXCTL = str(Path(sys.executable).parent / "onexctl")


def _ctl(d: Daemon, *args: str, uid: int | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [ONEXCTL, "--socket", str(d.socket), *args]
    if uid is not None:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--groups=4243", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, cwd=ROOT)


def test_onexctl_covers_every_endpoint(daemons: Callable[..., Daemon]) -> None:
    """version, health, job run/get/list/logs/cancel, policy status/reload/explain, in json and yaml."""
    d = daemons(backend="fake")
    d.start()
    assert json.loads(_ctl(d, "-o", "json", "version").stdout)["server"]["apiVersion"] == "onexd/v1"
    assert _ctl(d, "health").returncode == 0
    run = _ctl(d, "-o", "json", "job", "run", "hello", "--input", '{"name": "ctl"}', "--wait")
    record = json.loads(run.stdout)
    assert run.returncode == 0 and record["status"] == "succeeded"
    assert json.loads(_ctl(d, "-o", "json", "job", "get", record["id"]).stdout)["id"] == record["id"]
    assert record["id"] in _ctl(d, "-o", "yaml", "job", "list").stdout
    logs = _ctl(d, "job", "logs", record["id"], "-f")
    assert logs.stdout == '{"name":"ctl"}\n' and "job ended: succeeded" in logs.stderr
    assert _ctl(d, "-o", "json", "job", "cancel", record["id"]).returncode == 0
    status = json.loads(_ctl(d, "-o", "json", "policy", "status").stdout)
    assert {b["name"] for b in status["bundles"]} == {"hello", "data-job"}
    assert json.loads(_ctl(d, "-o", "json", "policy", "reload").stdout)["changed"] is False
    explain = _ctl(d, "-o", "json", "policy", "explain", str(ROOT / "examples/requests/hello.json"))
    assert explain.returncode == 0 and json.loads(explain.stdout)["allowed"] is True
    adhoc = _ctl(d, "-o", "json", "job", "run", "--profile", "busybox-tiny", "--wait", "--", "echo", "hi")
    assert adhoc.returncode == 0


def test_onexctl_exit_codes(daemons: Callable[..., Daemon]) -> None:
    """Denied and invalid: 3; usage: 2; no daemon: 1, with a message saying what to check."""
    d = daemons(backend="fake")
    d.start()
    denied = _ctl(d, "job", "run", "hello", "--input", '{"name": "x"}', uid=4299)
    assert denied.returncode == 3 and "no-binding" in denied.stderr
    invalid = _ctl(d, "job", "run", "hello", "--input", '{"name": ""}')
    assert invalid.returncode == 3
    assert "inputSchema" in invalid.stderr
    assert _ctl(d, "job", "run", "hello", "--input", "{not json").returncode == 2
    assert _ctl(d, "job", "frobnicate").returncode == 2
    explain = _ctl(d, "policy", "explain", "--as", "ApiKey:deploy-bot", str(ROOT / "examples/requests/wordcount.json"))
    assert explain.returncode == 3
    gone = subprocess.run([ONEXCTL, "--socket", str(d.socket.parent / "nope.sock"), "version"], capture_output=True,
                          text=True, check=False)
    assert gone.returncode == 1 and "is onexd running" in gone.stderr


def test_issue_13_4_onexctl_node_list_and_get(daemons: Callable[..., Daemon]) -> None:
    """`onexctl node list|get` show the nodes of the active policy in every output format; a missing node exits
    non-zero with the daemon's message, a caller without nodes:read is denied (exit 3)."""
    d = daemons(backend="fake", with_testers=True)
    d.start()
    listing = json.loads(_ctl(d, "-o", "json", "node", "list").stdout)
    assert [n["name"] for n in listing["nodes"]] == ["hello", "wordcount"]
    table = _ctl(d, "node", "list")
    assert table.returncode == 0 and "wordcount" in table.stdout and "python-data" in table.stdout
    assert "name: wordcount" in _ctl(d, "-o", "yaml", "node", "get", "wordcount").stdout
    assert json.loads(_ctl(d, "node", "get", "hello", "-o", "json").stdout)["name"] == "hello"  # -o after too
    one = _ctl(d, "node", "get", "wordcount")
    assert one.returncode == 0 and "analytics" in one.stdout and "api-token" in one.stdout
    missing = _ctl(d, "node", "get", "nope")
    assert missing.returncode != 0 and "nope" in missing.stderr
    assert _ctl(d, "node", "list", uid=4242).returncode == 3
