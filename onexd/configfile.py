"""Reading onexd.yaml: the file (through the safe YAML reader), systemd's fallbacks and flag overrides, into a
DaemonConfig. Kept apart from config.py so the config model does not depend on the policy package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onexd.config import ConfigProblem, DaemonConfig, config_or_problems
from onexd.errors import ConfigError
from onexd.policy.schema import SchemaSet, without_nulls
from onexd.policy.yamlsafe import load_documents


def check_config(path: Path, overrides: dict[str, str] | None = None, fallbacks: dict[str, str] | None = None,
                 must_exist: bool = False) -> tuple[DaemonConfig | None, list[ConfigProblem]]:
    """Read onexd.yaml (if it exists, or it must), fill what it leaves unset from fallbacks (systemd's
    directories), apply overrides (dotted keys, from flags and ONEXD_* variables), and validate: the config, or
    every problem found."""
    data: dict[str, Any] = {}
    typed: list[ConfigProblem] = []  # the file's values held to the schema's types (flags and variables are text)
    if must_exist and not path.exists():
        return None, [ConfigProblem("(file)", f"{path}: no such file")]
    if path.exists():
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return None, [ConfigProblem("(file)", f"{path}: cannot read: {exc.strerror}")]
        docs, unreadable = load_documents(raw, str(path))
        if unreadable:
            return None, [ConfigProblem(_field(p.path), p.message, p.line) for p in unreadable]
        if len(docs) != 1 or not isinstance(docs[0].data, dict):
            return None, [ConfigProblem("(file)", "expected exactly one YAML mapping (kind: DaemonConfig)")]
        typed = [ConfigProblem(_field(where), message, line)
                 for where, line, message in SchemaSet.shared().config_problems(docs[0])]
        data = without_nulls(docs[0].data)  # `api:` with every line commented out is the defaults
    for dotted, value in (fallbacks or {}).items():
        _set(data, dotted, value, replace=False)
    for dotted, value in (overrides or {}).items():
        _set(data, dotted, value, replace=True)
    if not typed:
        return config_or_problems(data)
    for problem in typed:  # the model checks the rest, without the values it would have coerced
        _drop(data, problem.field)
    _, problems = config_or_problems(data)
    said = {p.field for p in typed}
    return None, typed + [p for p in problems if p.field not in said]


def load_config(path: Path, overrides: dict[str, str] | None = None,
                fallbacks: dict[str, str] | None = None, must_exist: bool = False) -> DaemonConfig:
    """check_config(), raising ConfigError that lists every problem (the first line names the first field)."""
    config, problems = check_config(path, overrides, fallbacks, must_exist)
    if config is None:
        raise ConfigError("\n".join(_line(str(path), p) for p in problems))
    return config


def _field(pointer: str) -> str:
    """The dotted field a YAML reader's JSON pointer names (`/api/maxConnections`: `api.maxConnections`); the
    file itself when the problem is not in a value (a syntax error, the whole document)."""
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    return ".".join(parts) if parts and all(parts) else "(file)"


def _line(source: str, p: ConfigProblem) -> str:
    if p.field == "(file)":
        return p.message if p.message.startswith(source) else f"{source}:{p.line or '?'}: {p.message}"
    return f"{source}{f':{p.line}' if p.line else ''}: field {p.field}: {p.message}"


def _set(data: dict[str, Any], dotted: str, value: str, replace: bool) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    if replace or leaf not in data:
        data[leaf] = value


def _drop(data: Any, dotted: str) -> None:
    """Remove the field at a dotted path (list items by index) from parsed data, if it is there."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict):
            data = data.get(part)
        else:
            return
    if isinstance(data, dict):
        data.pop(leaf, None)
