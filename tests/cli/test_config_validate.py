"""`onexd config validate` and `onexd serve` on a bad config: every problem at once, with its field path, exit 3
(serve: 2, before anything is written), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from onexd.configfile import check_config
from tests.conftest import run_cli

ONEXD = str(Path(sys.executable).parent / "onexd")
HEAD = "apiVersion: onexd/v1\nkind: DaemonConfig\n"
BAD_SINKS = {
    "no-scheme": ('{name: a, type: syslog, address: "127.0.0.1:514"}', "address", "needs a scheme"),
    "no-port": ('{name: a, type: syslog, address: "tcp://127.0.0.1"}', "address", "needs a port"),
    "bare-ipv6": ('{name: a, type: syslog, address: "tcp://::1:514"}', "address", "brackets"),
    "bad-ipv6": ('{name: a, type: syslog, address: "tcp://[::zz]:514"}', "address", "not an IPv6 address"),
    "port-range": ('{name: a, type: syslog, address: "tcp://127.0.0.1:70000"}', "address", "1 to 65535"),
    "scheme": ('{name: a, type: syslog, address: "sctp://127.0.0.1:514"}', "address", "not one of"),
    "unix-relative": ('{name: a, type: syslog, address: "unix://dev/log"}', "address", "absolute"),
    "credentials": ('{name: a, type: webhook, url: "https://user:pw@127.0.0.1/hook"}', "url", "credentials"),
    "webhook-scheme": ('{name: a, type: webhook, url: "ftp://127.0.0.1/x"}', "url", "http or https"),
    "syslog-with-url": ('{name: a, type: syslog, url: "http://127.0.0.1/"}', "url", "not used by type syslog"),
    "tls-without-ca": ('{name: a, type: syslog, address: "tls://127.0.0.1:6514"}', "tls", "needs `tls: {caFile}`"),
    "udp-at-least-once": ('{name: a, type: syslog, address: "udp://127.0.0.1:514"}', "delivery", "best-effort"),
    "best-effort-tcp": ('{name: a, type: syslog, address: "tcp://127.0.0.1:514", delivery: best-effort}',
                        "delivery", "only for udp"),
    "auth-on-syslog": ('{name: a, type: syslog, address: "tcp://127.0.0.1:514", authorization: {file: /x}}',
                       "authorization", "only webhook"),
    "file-without-path": ("{name: a, type: file}", "path", "needs `path`"),
    "journal-on-tcp": ('{name: a, type: syslog, address: "tcp://127.0.0.1:514", format: journal}', "format",
                       "for unix:// sinks"),
}


def _write(tmp_path: Path, sinks: list[str]) -> Path:
    path = tmp_path / "onexd.yaml"
    path.write_text(HEAD + "audit:\n  sinks:\n" + "".join(f"    - {s}\n" for s in sinks))
    return path


@pytest.mark.parametrize("case", sorted(BAD_SINKS))
def test_each_bad_sink_is_refused_with_its_field(tmp_path: Path, case: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad sink address or combination is refused at validation: exit 3, the field path and why."""
    sink, field, why = BAD_SINKS[case]
    code, stdout, _ = run_cli(["config", "validate", "--config", str(_write(tmp_path, [sink])), "-o", "json"],
                              capsys)
    out = json.loads(stdout)
    assert code == 3 and out["valid"] is False
    assert any(p["field"] == f"audit.sinks.0.{field}" and why in p["message"] for p in out["problems"]), out


def test_every_problem_is_reported_in_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several bad sinks and another bad field: all of them in one text report, each with its path."""
    path = _write(tmp_path, [BAD_SINKS["no-port"][0], BAD_SINKS["credentials"][0].replace("a,", "b,"),
                             BAD_SINKS["tls-without-ca"][0].replace("a,", "c,")])
    path.write_text(path.read_text() + "concurrency: {maxJobs: 0}\n")
    code, _, err = run_cli(["config", "validate", "--config", str(path)], capsys)
    assert code == 3
    for field in ("audit.sinks.0.address", "audit.sinks.1.url", "audit.sinks.2.tls", "concurrency.maxJobs"):
        assert field in err, err
    assert "4 problems" in err and "Traceback" not in err


def test_a_valid_config_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Good sinks of every kind validate."""
    path = _write(tmp_path, ['{name: a, type: syslog, address: "tcp://[::1]:514", framing: lf}',
                             '{name: b, type: syslog, address: "udp://127.0.0.1:514", delivery: best-effort}',
                             '{name: c, type: syslog, address: "tls://logs.example:6514", tls: {caFile: /etc/ca.pem}}',
                             '{name: d, type: webhook, url: "https://siem.example/in?x=1", '
                             "authorization: {credential: siem-token}}",
                             '{name: e, type: syslog, address: "unix:///dev/log"}',
                             "{name: f, type: file, path: /var/log/onexd/audit.jsonl}"])
    code, out, _ = run_cli(["config", "validate", "--config", str(path)], capsys)
    assert code == 0 and "valid" in out


@pytest.mark.integration
def test_onexd_config_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    """ONEXD_CONFIG pointing nowhere fails validation (3) and serve (2); the defaults are not used silently."""
    env = {**os.environ, "ONEXD_CONFIG": str(tmp_path / "absent.yaml")}
    proc = subprocess.run([ONEXD, "config", "validate"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 3 and "no such file" in proc.stderr
    proc = subprocess.run([ONEXD, "serve", "--state-dir", str(tmp_path / "s")], env=env, capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 2 and "no such file" in proc.stderr and not (tmp_path / "s").exists()


@pytest.mark.integration
def test_serve_refuses_a_bad_sink_before_writing_anything(tmp_path: Path) -> None:
    """`onexd serve` with a bad sink exits 2 naming every bad field; no state directory, socket or trail."""
    path = _write(tmp_path, [BAD_SINKS["no-scheme"][0], BAD_SINKS["bare-ipv6"][0].replace("a,", "b,")])
    state, sock = tmp_path / "state", tmp_path / "run" / "onexd.sock"
    proc = subprocess.run([ONEXD, "serve", "--config", str(path), "--state-dir", str(state), "--socket", str(sock)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "audit.sinks.0.address" in proc.stderr and "audit.sinks.1.address" in proc.stderr
    assert "Traceback" not in proc.stderr and not state.exists() and not sock.parent.exists()


@pytest.mark.integration
def test_serve_refuses_a_tls_sink_whose_ca_cannot_be_loaded(tmp_path: Path) -> None:
    """A tls:// sink whose caFile is missing stops `onexd serve` (exit 2, naming the file) before the state
    directory is created: never a fallback to an unverified connection."""
    path = _write(tmp_path, [f'{{name: a, type: syslog, address: "tls://127.0.0.1:6514", '
                             f"tls: {{caFile: {tmp_path}/absent-ca.pem}}}}"])
    state = tmp_path / "state"
    proc = subprocess.run([ONEXD, "serve", "--config", str(path), "--state-dir", str(state), "--socket",
                           str(tmp_path / "run" / "onexd.sock")], capture_output=True, text=True, check=False,
                          timeout=60)
    assert proc.returncode == 2 and "absent-ca.pem" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not state.exists()


def _scalar_fields(schema: dict[str, Any], node: dict[str, Any], path: str = "") -> list[tuple[str, str]]:
    """(dotted field, JSON type) of every integer, number and boolean field of the config schema, sections
    followed through their $refs."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if node.get("type") == "object" and "properties" in node:
        return [found for name, sub in node["properties"].items()
                for found in _scalar_fields(schema, sub, f"{path}.{name}" if path else name)]
    kind = node.get("type")
    return [(path, kind)] if kind in ("integer", "number", "boolean") else []


CONFIG_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "daemon-config.json").read_text())
SCALARS = _scalar_fields(CONFIG_SCHEMA, CONFIG_SCHEMA)


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    data: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        data = {part: data}
    return data


def test_every_number_and_switch_of_the_config_is_found() -> None:
    """The walk below reaches the sections' fields (a walk that found nothing would make the next test vacuous)."""
    names = {name for name, _ in SCALARS}
    assert {"api.maxConnections", "concurrency.maxJobs", "reload.debounceMs", "api.headerTimeoutSeconds"} <= names
    assert len(SCALARS) >= 20


@pytest.mark.parametrize(("field", "kind"), SCALARS, ids=[name for name, _ in SCALARS])
def test_a_wrongly_typed_value_in_the_file_is_refused_not_coerced(field: str, kind: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every number and switch in onexd.yaml is held to its schema type: `true` is not a number, "4" is not an
    integer, 1 is not a switch (the model alone coerced them); the problem names the field and its line."""
    wrong: Any = 1 if kind == "boolean" else (True, "4")
    for value in wrong if isinstance(wrong, tuple) else (wrong,):
        path = tmp_path / "onexd.yaml"
        path.write_text(HEAD + yaml.safe_dump(_nested(field, value)))
        code, out, _ = run_cli(["config", "validate", "--config", str(path), "-o", "json"], capsys)
        report = json.loads(out)
        assert code == 3 and [p["field"] for p in report["problems"]] == [field], (value, report)
        assert report["problems"][0]["line"] is not None


def test_type_problems_and_the_models_own_problems_come_in_one_report(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A wrongly typed field and a sink the model refuses are reported together, each once."""
    path = _write(tmp_path, [BAD_SINKS["no-port"][0]])
    path.write_text(path.read_text() + "reload: {debounceMs: true}\napi: {maxConnections: 9000}\n")
    code, out, _ = run_cli(["config", "validate", "--config", str(path), "-o", "json"], capsys)
    fields = sorted(p["field"] for p in json.loads(out)["problems"])
    assert code == 3 and fields == ["api.maxConnections", "audit.sinks.0.address", "reload.debounceMs"]


def test_null_leaves_a_field_unset_and_flags_stay_text(tmp_path: Path) -> None:
    """`listen: null` is an unset optional field, as before, and a section left empty (`api:`, its lines
    commented out) is its defaults; values from flags and ONEXD_* variables are text and still read as numbers."""
    path = tmp_path / "onexd.yaml"
    path.write_text(HEAD + "metrics: {listen: null}\napi:\n  # maxConnections: 512\n")
    config, problems = check_config(path, overrides={"concurrency.maxJobs": "4"})
    assert problems == [] and config is not None
    assert config.metrics.listen is None and config.concurrency.maxJobs == 4
    assert config.api.maxConnections == 256
