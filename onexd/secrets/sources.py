"""Secret sources: where values come from. A failure names the secret, never the value."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Protocol

from onexd.errors import SecretError as SecretError
from onexd.policy.models import SecretSourceSpec
from onexd.policy.security import reserved_env_name


@dataclass(frozen=True, slots=True)
class Reserved:
    """onexd's own key material, which no source may hand to a job: its state directory (master.key, keys,
    the encrypted store) and its systemd credentials directory. ONEXD_* variables are always reserved."""

    directories: tuple[Path, ...] = ()

    @classmethod
    def of(cls, state_dir: Path | None, environ: Mapping[str, str]) -> Reserved:
        dirs = [state_dir] if state_dir is not None else []
        if environ.get("CREDENTIALS_DIRECTORY"):
            dirs.append(Path(environ["CREDENTIALS_DIRECTORY"]))
        return cls(tuple(dirs))

    def covers(self, path: Path) -> bool:
        """True if path (symbolic links resolved) is a reserved directory or inside one."""
        try:
            real = path.resolve()
            return any(real.is_relative_to(d.resolve()) for d in self.directories)
        except (OSError, RuntimeError):  # a link loop: fail closed
            return True


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
        if reserved_env_name(name):
            raise SecretError(f"environment variable {name} belongs to onexd and is never a secret source")
        value = self.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name} is not set")
        return value.encode()


@dataclass(frozen=True, slots=True)
class FileSecretSource:
    """Values from a directory holding one file per key."""

    directory: Path
    reserved: Reserved = Reserved()

    def read(self, key: str) -> bytes:
        try:
            path = (self.directory / key).resolve()
            inside = path.is_relative_to(self.directory.resolve())
        except (OSError, RuntimeError):
            raise SecretError(f"key {key!r} cannot be resolved in the source directory") from None
        if not inside:
            raise SecretError(f"key {key!r} leaves the source directory")
        if self.reserved.covers(path):
            raise SecretError(f"key {key!r} is in onexd's own state or credentials, never a secret source")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SecretError(f"cannot read key {key!r} from {self.directory}: {exc.strerror}") from None


class EncryptedBackend(Protocol):
    def get(self, source: str, key: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class EncryptedSecretSource:
    """Values from onexd's own encrypted store, under this source's name."""

    name: str
    store: EncryptedBackend

    def read(self, key: str) -> bytes:
        return self.store.get(self.name, key)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is answered as an error: following it would re-send X-Vault-Token to wherever it points."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Message, newurl: str) -> urllib.request.Request | None:
        return None


_VAULT_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True, slots=True)
class VaultSecretSource:
    """Values from a HashiCorp Vault KV v2 mount: GET {address}/v1/{mount}/data/{key}, field `value` (or the
    only field). The token is read from tokenFile on each cache miss, so token renewal needs no restart."""

    address: str
    mount: str
    token_file: Path
    timeout_s: float = 5.0
    reserved: Reserved = Reserved()

    def read(self, key: str) -> bytes:
        if self.reserved.covers(self.token_file):
            # Sending onexd's own key material to a server as a "token" is a leak like any other.
            raise SecretError("the Vault token file is in onexd's own state or credentials")
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise SecretError(f"cannot read the Vault token file {self.token_file}: {exc.strerror}") from None
        url = f"{self.address.rstrip('/')}/v1/{self.mount}/data/{urllib.parse.quote(key)}"
        request = urllib.request.Request(url, headers={"X-Vault-Token": token})  # noqa: S310 - http(s) URL from policy
        try:
            with _VAULT_OPENER.open(request, timeout=self.timeout_s) as response:
                body = json.loads(response.read(1024 * 1024))
        except urllib.error.HTTPError as exc:
            exc.close()
            redirect = " (redirects are not followed: the token would go along)" if 300 <= exc.code < 400 else ""
            raise SecretError(f"Vault answered {exc.code} for key {key!r}{redirect}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SecretError(f"Vault at {self.address} unreachable or not KV v2 ({type(exc).__name__})") from None
        fields = (body.get("data") or {}).get("data") if isinstance(body, dict) else None
        if not isinstance(fields, dict) or not fields:
            raise SecretError(f"Vault returned no data for key {key!r}")
        if "value" in fields:
            value = fields["value"]
        elif len(fields) == 1:
            value = next(iter(fields.values()))
        else:
            raise SecretError(f"Vault key {key!r} has several fields and none named `value`")
        return str(value).encode()


def source_for(spec: SecretSourceSpec, environ: Mapping[str, str] | None = None, name: str = "",
               store: EncryptedBackend | None = None, reserved: Reserved | None = None) -> SecretSource:
    """The source implementation for a policy SecretSource; reserved is what no source may read."""
    reserved = reserved or Reserved.of(None, os.environ if environ is None else environ)
    if spec.type == "env":
        assert spec.prefix is not None
        return EnvSecretSource(spec.prefix, os.environ if environ is None else environ)
    if spec.type == "file":
        assert spec.path is not None
        return FileSecretSource(Path(spec.path), reserved)
    if spec.type == "vault":
        assert spec.address is not None
        assert spec.mount is not None
        assert spec.tokenFile is not None
        return VaultSecretSource(spec.address, spec.mount, Path(spec.tokenFile), reserved=reserved)
    if store is None:  # fail closed: a job that needs a secret we cannot deliver does not run
        raise SecretError("the encrypted secret store is not available here (it lives in the daemon's state "
                          "directory)")
    return EncryptedSecretSource(name, store)


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
