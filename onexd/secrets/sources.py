"""Secret sources: where values come from. A failure names the secret, never the value."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from onexd.errors import OnexdError
from onexd.policy.models import SecretSourceSpec


class SecretError(OnexdError):
    """A secret could not be resolved (the message names it, never its value)."""


class SecretSource(Protocol):
    def read(self, key: str) -> bytes:
        """The value of key, or SecretError."""


@dataclass(frozen=True, slots=True)
class EnvSecretSource:
    """Values from the daemon's environment: `<prefix><KEY>`."""

    prefix: str
    environ: Mapping[str, str]

    def read(self, key: str) -> bytes:
        name = self.prefix + key
        value = self.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name} is not set")
        return value.encode()


@dataclass(frozen=True, slots=True)
class FileSecretSource:
    """Values from a directory holding one file per key."""

    directory: Path

    def read(self, key: str) -> bytes:
        path = (self.directory / key).resolve()
        if not path.is_relative_to(self.directory.resolve()):
            raise SecretError(f"key {key!r} leaves the source directory")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SecretError(f"cannot read key {key!r} from {self.directory}: {exc.strerror}") from None


def source_for(spec: SecretSourceSpec, environ: Mapping[str, str] | None = None) -> SecretSource:
    """The source implementation for a policy SecretSource."""
    if spec.type == "env":
        assert spec.prefix is not None
        return EnvSecretSource(spec.prefix, os.environ if environ is None else environ)
    if spec.type == "file":
        assert spec.path is not None
        return FileSecretSource(Path(spec.path))
    # Fail closed: a job that needs a secret we cannot deliver does not run.
    raise SecretError(f"secret sources of type {spec.type!r} are not available in this version of onexd")


class SecretCache:
    """Caches values per (source, key) for the source's cacheTTLSeconds. Values never leave this object
    except to be staged into a job."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, bytes]] = {}

    def get(self, source_name: str, key: str, ttl_s: int, read: Callable[[], bytes]) -> bytes:
        now = self._clock()
        hit = self._entries.get((source_name, key))
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = read()
        if ttl_s > 0:
            self._entries[(source_name, key)] = (now, value)
        return value
