"""Daemon config `api`: the bounds on hostile callers have floors, ceilings and the former fixed values as
defaults, and the composition root hands them to the server, the body reader and the failure limiter."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest

from onexd.api import server
from onexd.api.context import ApiContext
from onexd.api.fdlimit import RESERVED_FILES, soft_limit_needed
from onexd.composition import api_server, compose
from onexd.config import ApiConfig, DaemonConfig, config_from_data, config_or_problems
from onexd.errors import ConfigError
from tests.conftest import run_cli

# The limits onexd had as constants before they were configurable: an existing config keeps them.
FORMER = {"headerTimeoutSeconds": 10.0, "bodyTimeoutSeconds": 10.0, "maxConnections": 256,
          "authFailureBurst": 10, "authFailuresPerMinute": 30}


def test_api_defaults_are_the_former_fixed_limits() -> None:
    """A config without `api` gets exactly the limits that were constants, and so do parts built without a
    config (the server's and the context's own defaults)."""
    assert DaemonConfig().api.model_dump() == FORMER
    assert config_from_data({"policyDir": "/srv/p"}, "test").api == ApiConfig()
    none: Any = None
    built = server.ApiServer(none, Path("/run/x.sock"), 0o600, None)
    assert (built.limits.maxConnections, built.limits.headerTimeoutSeconds) == (256, 10.0)
    assert server.handler_options(built.limits)["keepalive_timeout"] == 10.0
    ctx = ApiContext(policy=none, jobs=none, limiter=none, reload=none, engine_ok=lambda: True)
    assert ctx.limits.bodyTimeoutSeconds == 10.0
    assert (ctx.failures.burst, ctx.failures.rate) == (10.0, 30 / 60)


@pytest.mark.parametrize(("field", "value", "bound"), [
    ("headerTimeoutSeconds", 0.05, "greater than or equal to 0.1"),
    ("headerTimeoutSeconds", 0, "greater than or equal to 0.1"),
    ("headerTimeoutSeconds", -1, "greater than or equal to 0.1"),
    ("headerTimeoutSeconds", 120.5, "less than or equal to 120"),
    ("bodyTimeoutSeconds", 0.09, "greater than or equal to 0.1"),
    ("bodyTimeoutSeconds", 301, "less than or equal to 300"),
    ("maxConnections", 7, "greater than or equal to 8"),
    ("maxConnections", 0, "greater than or equal to 8"),
    ("maxConnections", 4097, "less than or equal to 4096"),
    ("authFailureBurst", 0, "greater than or equal to 1"),
    ("authFailureBurst", 1001, "less than or equal to 1000"),
    ("authFailuresPerMinute", 0, "greater than or equal to 1"),
    ("authFailuresPerMinute", 6001, "less than or equal to 6000"),
])
def test_api_limits_outside_floor_or_ceiling_are_refused(field: str, value: float, bound: str) -> None:
    """Each limit below its floor or above its ceiling is a problem naming the field and the bound."""
    config, problems = config_or_problems({"api": {field: value}})
    assert config is None
    assert [(p.field, bound in p.message) for p in problems] == [(f"api.{field}", True)], problems


def test_api_limits_at_floor_and_ceiling_are_accepted() -> None:
    """The floors and ceilings themselves are valid values."""
    floors = {"headerTimeoutSeconds": 0.1, "bodyTimeoutSeconds": 0.1, "maxConnections": 8, "authFailureBurst": 1,
              "authFailuresPerMinute": 1}
    ceilings = {"headerTimeoutSeconds": 120, "bodyTimeoutSeconds": 300, "maxConnections": 4096,
                "authFailureBurst": 1000, "authFailuresPerMinute": 6000}
    for values in (floors, ceilings):
        assert config_from_data({"api": values}, "test").api.model_dump() == values


@pytest.mark.parametrize("api", [{"maxConnection": 10}, {"maxConnections": "many"}, {"maxConnections": 8.5},
                                 {"headerTimeoutSeconds": "10s"}, "fast", {"maxConnections": "256"},
                                 {"headerTimeoutSeconds": "10"}, {"headerTimeoutSeconds": True},
                                 {"authFailureBurst": True}, {"authFailuresPerMinute": "30"}])
def test_api_section_refuses_unknown_fields_and_wrong_types(api: Any) -> None:
    """A misspelt field, a value of the wrong kind or a section that is not a mapping is refused, not ignored: a
    quoted number or a boolean is not read as a number (`headerTimeoutSeconds: true` is not 1 s)."""
    config, problems = config_or_problems({"api": api})
    assert config is None and problems and all(p.field.startswith("api") for p in problems), problems


def test_configured_limits_reach_server_body_reader_and_failure_limiter(tmp_path: Path,
                                                                        staging_dir: Path) -> None:
    """compose() gives the context the body timeout and a failure limiter of the configured burst and rate;
    api_server() gives the server the connection cap and the header timeout; nothing is bound by building."""
    config = config_from_data({"stateDir": str(tmp_path / "state"), "policyDir": str(tmp_path / "policies"),
                               "runtime": {"backend": "fake"}, "secrets": {"stagingDir": str(staging_dir)},
                               "socket": {"path": str(tmp_path / "run" / "onexd.sock")},
                               "api": {"headerTimeoutSeconds": 0.5, "bodyTimeoutSeconds": 0.75,
                                       "maxConnections": 8, "authFailureBurst": 3, "authFailuresPerMinute": 2}},
                              "test")
    parts = compose(config, lambda: True)
    try:
        assert parts.api.limits.bodyTimeoutSeconds == 0.75
        assert (parts.api.failures.burst, parts.api.failures.rate) == (3.0, 2 / 60)
        assert [parts.api.failures.check("uid:7") for _ in range(3)] == [None, None, None]
        assert parts.api.failures.check("uid:7") is not None  # the fourth failure in a row is held back
        built = api_server(config, parts.api, None)
        assert (built.limits.maxConnections, built.limits.headerTimeoutSeconds) == (8, 0.5)
        assert built.path == tmp_path / "run" / "onexd.sock" and not built.path.parent.exists()
    finally:
        parts.audit.close()
        parts.store.close()


# YAML values of the wrong kind that pydantic's lax mode would turn into numbers inside the bounds.
WRONG_KINDS = [("maxConnections", "'64'"), ("maxConnections", "8.0"), ("maxConnections", "1e3"),
               ("authFailureBurst", "true"), ("authFailureBurst", "' 9 '"), ("authFailuresPerMinute", "true"),
               ("authFailuresPerMinute", "'6000'"), ("headerTimeoutSeconds", "true"),
               ("headerTimeoutSeconds", "'0.1'"), ("bodyTimeoutSeconds", "'1e2'"), ("bodyTimeoutSeconds", "false")]


@pytest.mark.parametrize(("field", "value"), WRONG_KINDS)
def test_api_limits_of_the_wrong_kind_are_refused_not_coerced(tmp_path: Path, field: str, value: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A boolean, a quoted number or (for a count) a float is refused by `onexd config validate` (exit 3,
    field named), not read as the number it resembles."""
    path = tmp_path / "onexd.yaml"
    path.write_text(f"apiVersion: onexd/v1\nkind: DaemonConfig\napi:\n  {field}: {value}\n")
    code, out, _ = run_cli(["config", "validate", "--config", str(path), "-o", "json"], capsys)
    problems = json.loads(out)["problems"]
    assert code == 3 and [p["field"] for p in problems] == [f"api.{field}"], (code, problems)


def test_open_file_limit_decision_for_the_connection_cap() -> None:
    """The soft limit is left when it has room for the cap plus the daemon's own files, raised to exactly that when
    the hard limit allows, and a hard limit without room is a ConfigError naming api.maxConnections."""
    unlimited = resource.RLIM_INFINITY
    assert soft_limit_needed(256, 1024, 524288) is None
    assert soft_limit_needed(4096, unlimited, unlimited) is None
    assert soft_limit_needed(4096, 1024, 524288) == 4096 + RESERVED_FILES
    assert soft_limit_needed(4096, 1024, unlimited) == 4096 + RESERVED_FILES
    with pytest.raises(ConfigError, match=r"api\.maxConnections: 4096 connections need 4224 open files"):
        soft_limit_needed(4096, 256, 256)


@pytest.mark.parametrize(("field", "value"), [("maxConnections", ".nan"), ("headerTimeoutSeconds", ".inf"),
                                              ("bodyTimeoutSeconds", "-.inf"), ("authFailureBurst", "1e400"),
                                              ("authFailuresPerMinute", "99999999999999999999999"),
                                              ("maxConnections", "0755"), ("headerTimeoutSeconds", "1:30")])
def test_api_values_the_yaml_reader_refuses_name_their_field(tmp_path: Path, field: str, value: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """NaN, infinity, a number beyond 64 bits or a YAML 1.1-ambiguous scalar is refused naming the field and its
    line, not only `(file)`."""
    path = tmp_path / "onexd.yaml"
    path.write_text(f"apiVersion: onexd/v1\nkind: DaemonConfig\napi:\n  {field}: {value}\n")
    code, out, _ = run_cli(["config", "validate", "--config", str(path), "-o", "json"], capsys)
    problems = json.loads(out)["problems"]
    assert code == 3 and [(p["field"], p.get("line")) for p in problems] in ([(f"api.{field}", 4)],
                                                                               [(f"api.{field}", None)]), problems
