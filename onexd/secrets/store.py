"""onexd's own encrypted secret store (SecretSource type `encrypted`).

Values are sealed with a data key (AES-256-GCM, the entry's name as associated data); the data key is sealed
with the master key. Rotating the data key re-encrypts every entry and replaces the file atomically, so a
crash leaves either the old or the new store, never a mix. The file never holds a plaintext value.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from onexd.crypto import random_key, seal, unseal
from onexd.fsutil import atomic_write
from onexd.keys.master import MasterKey
from onexd.secrets.sources import SecretError

KeyEvent = Callable[[str, dict[str, Any]], None]


class EncryptedStore:
    def __init__(self, path: Path, master: MasterKey, clock: Callable[[], float] = time.time,
                 on_event: KeyEvent | None = None) -> None:
        self.path = path
        self._kek = master.for_purpose("secret-store")
        self.clock = clock
        self.on_event = on_event or (lambda kind, data: None)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The store's content under an exclusive lock (the daemon and `onexd secret set` may both write)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text()) if self.path.exists() else self._new()
            yield data

    def _new(self) -> dict[str, Any]:
        key_id = secrets.token_hex(8)
        key = random_key()
        self.on_event("secret store data key created", {"keyId": key_id})
        return {"dataKey": {"id": key_id, "createdAt": self.clock(),
                            "sealed": seal(self._kek, key, key_id.encode())}, "entries": {}}

    def _data_key(self, data: dict[str, Any]) -> bytes:
        meta = data["dataKey"]
        return unseal(self._kek, meta["sealed"], meta["id"].encode())

    def _save(self, data: dict[str, Any]) -> None:
        atomic_write(self.path, json.dumps(data, indent=2).encode())

    @staticmethod
    def _name(source: str, key: str) -> str:
        return f"{source}/{key}"

    def set(self, source: str, key: str, value: bytes) -> None:
        with self._locked() as data:
            name = self._name(source, key)
            data["entries"][name] = seal(self._data_key(data), value, name.encode())
            self._save(data)

    def get(self, source: str, key: str) -> bytes:
        with self._locked() as data:
            sealed = data["entries"].get(self._name(source, key))
            if sealed is None:
                raise SecretError(f"no key {key!r} in the encrypted store for source {source!r}")
            return unseal(self._data_key(data), sealed, self._name(source, key).encode())

    def names(self) -> list[str]:
        with self._locked() as data:
            return sorted(data["entries"])

    def data_key_age_s(self) -> float:
        with self._locked() as data:
            return self.clock() - float(data["dataKey"]["createdAt"])

    def rotate(self, reason: str) -> str:
        """A new data key; every entry re-encrypted under it; the old key discarded. Returns the new key id."""
        with self._locked() as data:
            old = self._data_key(data)
            plain = {n: unseal(old, s, n.encode()) for n, s in data["entries"].items()}
            fresh = self._new()
            new_key = self._data_key(fresh)
            fresh["entries"] = {n: seal(new_key, v, n.encode()) for n, v in plain.items()}
            self._save(fresh)
            self.on_event("secret store data key rotated", {"from": data["dataKey"]["id"],
                                                            "to": fresh["dataKey"]["id"], "entries": len(plain),
                                                            "reason": reason})
            return str(fresh["dataKey"]["id"])
