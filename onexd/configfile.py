"""Reading onexd.yaml: the file (through the safe YAML reader), systemd's fallbacks and flag overrides, into a
DaemonConfig. Kept apart from config.py so the config model does not depend on the policy package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onexd.config import DaemonConfig, config_from_data
from onexd.errors import ConfigError
from onexd.policy.yamlsafe import load_documents


def load_config(path: Path, overrides: dict[str, str] | None = None,
                fallbacks: dict[str, str] | None = None) -> DaemonConfig:
    """Read onexd.yaml (if it exists), fill what it leaves unset from fallbacks (systemd's directories), then
    apply overrides (dotted keys, from flags and ONEXD_* variables)."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        docs, problems = load_documents(raw, str(path))
        if problems:
            p = problems[0]
            raise ConfigError(f"{path}:{p.line or '?'}: {p.message}")
        if len(docs) != 1 or not isinstance(docs[0].data, dict):
            raise ConfigError(f"{path}: expected exactly one YAML mapping (kind: DaemonConfig)")
        data = docs[0].data
    for dotted, value in (fallbacks or {}).items():
        _set(data, dotted, value, replace=False)
    for dotted, value in (overrides or {}).items():
        _set(data, dotted, value, replace=True)
    return config_from_data(data, str(path))


def _set(data: dict[str, Any], dotted: str, value: str, replace: bool) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    if replace or leaf not in data:
        data[leaf] = value
