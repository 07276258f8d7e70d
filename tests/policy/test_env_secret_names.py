"""The secret-in-env rule matches variable names by word, not substring (issue 13, point 11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onexd.policy.security import env_name_words, env_secret_problem
from tests.conftest import minimal_docs, run_cli, write_bundle


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "COMPASS_MODE", "BYPASS_CACHE", "MAX_TOKENS",
                                  "SECRETARY_NAME", "PASSENGER_COUNT", "HTTP_PROXY", "keyboardLayout"])
def test_words_containing_secret_substrings_are_fine(name: str) -> None:
    """Names that merely contain `token`, `pass` or `secret` inside a word are not secrets."""
    assert env_secret_problem(name, "x", frozenset()) is None


@pytest.mark.parametrize("name", ["DB_PASSWORD", "GITHUB_TOKEN", "API_KEY", "apiKey", "AWS_SECRET_ACCESS_KEY",
                                  "SMTP_PASS", "privateKey", "client-secret", "MY_APIKEY", "Credentials"])
def test_secret_words_are_refused(name: str) -> None:
    """A whole word (or word pair) naming a secret is refused, in snake, kebab or camel case."""
    message = env_secret_problem(name, "x", frozenset())
    assert message is not None and "looks like a secret" in message


def test_file_variables_may_point_into_run_secrets() -> None:
    """`*_FILE` pointing into /run/secrets is the convention; other variables pointing there are refused."""
    assert env_secret_problem("DB_PASSWORD_FILE", "/run/secrets/db", frozenset()) is None
    assert env_secret_problem("DB_PASSWORD_FILE", "/etc/db-password", frozenset()) is not None
    assert env_secret_problem("DB_CONFIG", "/run/secrets/db", frozenset()) is not None
    assert env_secret_problem("DB", "db-password", frozenset({"db-password"})) is not None


def test_camel_and_acronyms_split_into_words() -> None:
    """Word splitting handles camelCase, acronyms and digits."""
    assert env_name_words("HTTPProxy2Port") == ["http", "proxy", "2", "port"]
    assert env_name_words("db.password-file") == ["db", "password", "file"]


def test_validate_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """onexd policy validate accepts TOKENIZERS_PARALLELISM and a *_FILE into /run/secrets, refuses DB_PASSWORD."""
    ok_docs = minimal_docs()
    ok_docs[0]["spec"]["env"] = {"TOKENIZERS_PARALLELISM": "false", "COMPASS_MODE": "on",
                                 "DB_PASSWORD_FILE": "/run/secrets/db"}
    code, out, _ = run_cli(["policy", "validate", str(write_bundle(tmp_path / "a", "ok", ok_docs)), "-o", "json"],
                           capsys)
    assert code == 0 and json.loads(out) == []
    bad_docs = minimal_docs()
    bad_docs[0]["spec"]["env"] = {"DB_PASSWORD": "x"}
    code, out, _ = run_cli(["policy", "validate", str(write_bundle(tmp_path / "b", "bad", bad_docs)), "-o", "json"],
                           capsys)
    assert code == 3 and [p["code"] for p in json.loads(out)] == ["security/secret-in-env"]
