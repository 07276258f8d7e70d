"""The signing keystore: keys with a kid and a state, private halves encrypted at rest.

States: pending (published in the JWKS, not yet signing) -> active (signs) -> grace (verifies only, until
`grace_until`) -> retired (public half kept, so old signatures stay checkable; never in the JWKS).
A rotation promotes the pending key and creates the next pending one, so a key is always published before
it signs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from onexd.crypto import (
    PrivateKey,
    PublicKey,
    algorithm_for,
    generate_key,
    key_id,
    load_private_pem,
    load_public_pem,
    private_pem,
    public_pem,
    seal,
    to_jwk,
    unseal,
)
from onexd.errors import KeystoreError as KeystoreError
from onexd.fsutil import atomic_write
from onexd.keys.master import MasterKey
from onexd.timestamps import iso

log = logging.getLogger("onexd.keys")
KeyEvent = Callable[[str, dict[str, Any]], None]
VERIFYING = ("pending", "active", "grace")


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: str
    algorithm: str
    state: str
    created_at: float
    public_pem: str
    sealed_private: dict[str, str] | None
    activated_at: float | None = None
    grace_until: float | None = None
    retired_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {"kid": self.kid, "algorithm": self.algorithm, "state": self.state, "createdAt": iso(self.created_at),
                "activatedAt": iso(self.activated_at), "graceUntil": iso(self.grace_until),
                "retiredAt": iso(self.retired_at)}


class Keystore:
    def __init__(self, path: Path, master: MasterKey, algorithm: str = "EdDSA",
                 clock: Callable[[], float] = time.time, on_event: KeyEvent | None = None) -> None:
        self.path = path
        self._kek = master.for_purpose("keystore")
        self.algorithm = algorithm
        self.clock = clock
        self.on_event = on_event or (lambda kind, data: log.info(kind, extra=data))
        self._lock = threading.Lock()
        self._entries: list[KeyEntry] = self._read()
        if not any(e.state == "active" for e in self._entries):
            with self._lock:
                self._add("active")
                self._add("pending")
                self._write()

    # --- persistence ---------------------------------------------------------------------------------

    def _read(self) -> list[KeyEntry]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text())
        return [KeyEntry(**e) for e in data["keys"]]

    def _write(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"keys": [asdict(e) for e in self._entries]}, indent=2).encode())

    def _add(self, state: str) -> KeyEntry:
        key = generate_key(self.algorithm)
        kid = key_id(key.public_key())
        now = self.clock()
        entry = KeyEntry(kid=kid, algorithm=algorithm_for(key), state=state, created_at=now,
                         public_pem=public_pem(key.public_key()).decode(),
                         sealed_private=seal(self._kek, private_pem(key), kid.encode()),
                         activated_at=now if state == "active" else None)
        self._entries.append(entry)
        self.on_event("key created", {"kid": kid, "state": state, "algorithm": entry.algorithm})
        return entry

    # --- use -----------------------------------------------------------------------------------------

    def entries(self) -> list[KeyEntry]:
        return list(self._entries)

    def signing_key(self) -> tuple[str, PrivateKey]:
        active = next(e for e in self._entries if e.state == "active")
        assert active.sealed_private is not None
        return active.kid, load_private_pem(unseal(self._kek, active.sealed_private, active.kid.encode()))

    def verifying_keys(self) -> dict[str, PublicKey]:
        now = self.clock()
        return {e.kid: load_public_pem(e.public_pem.encode()) for e in self._entries
                if e.state in VERIFYING and not (e.state == "grace" and (e.grace_until or 0) <= now)}

    def public_key(self, kid: str) -> PublicKey | None:
        """Any key ever held, retired ones included (for checking old signatures)."""
        entry = next((e for e in self._entries if e.kid == kid), None)
        return load_public_pem(entry.public_pem.encode()) if entry else None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [to_jwk(k, kid) for kid, k in self.verifying_keys().items()]}

    def active_age_s(self) -> float:
        active = next(e for e in self._entries if e.state == "active")
        return self.clock() - (active.activated_at or active.created_at)

    # --- rotation ------------------------------------------------------------------------------------

    def rotate(self, grace_s: float, reason: str) -> str:
        """pending -> active, active -> grace for grace_s, a new pending key. Returns the new active kid."""
        with self._lock:
            now = self.clock()
            pending = next((e for e in self._entries if e.state == "pending"), None)
            if pending is None:
                pending = self._add("pending")
            out: list[KeyEntry] = []
            for e in self._entries:
                if e.state == "active":
                    e = replace(e, state="grace", grace_until=now + grace_s)
                    self.on_event("key rotated out", {"kid": e.kid, "graceUntil": e.grace_until, "reason": reason})
                elif e.kid == pending.kid:
                    e = replace(e, state="active", activated_at=now)
                    self.on_event("key activated", {"kid": e.kid, "reason": reason})
                out.append(e)
            self._entries = out
            self._add("pending")
            self._retire(now)
            self._write()
            return pending.kid

    def retire_expired(self) -> list[str]:
        with self._lock:
            retired = self._retire(self.clock())
            if retired:
                self._write()
            return retired

    def _retire(self, now: float) -> list[str]:
        retired = []
        out = []
        for e in self._entries:
            if e.state == "grace" and (e.grace_until or 0) <= now:
                # The private half is destroyed; the public half stays for old signatures.
                e = replace(e, state="retired", retired_at=now, sealed_private=None)
                retired.append(e.kid)
                self.on_event("key retired", {"kid": e.kid})
            out.append(e)
        self._entries = out
        return retired
