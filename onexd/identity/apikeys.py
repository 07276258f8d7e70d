"""API keys: shown once at creation, stored only as a SHA-256 hash, with expiry, warning window and revocation.

A key is `onx_<id>_<secret>`: the id finds the record, the 256-bit secret is compared by hash in constant
time. High-entropy secrets need no slow hash; a leaked store reveals neither keys nor how to forge one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from onexd.errors import ApiKeyError as ApiKeyError
from onexd.errors import ApiKeyExists, ApiKeyNameInvalid, ApiKeyNotFound, ApiKeyRejected
from onexd.fields import NAME_PATTERN
from onexd.fsutil import atomic_write
from onexd.identity.principal import Principal
from onexd.timestamps import iso

_KEY = re.compile(r"^onx_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
NAME = re.compile(NAME_PATTERN)



@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    name: str
    key_id: str
    secret_sha256: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None

    def public(self, now: float, warn_s: float) -> dict[str, object]:
        state = "revoked" if self.revoked_at else "expired" if self.expires_at <= now else \
            "expiring" if self.expires_at - now <= warn_s else "active"
        return {"name": self.name, "keyId": self.key_id, "createdAt": iso(self.created_at),
                "expiresAt": iso(self.expires_at), "revokedAt": iso(self.revoked_at), "state": state}


class ApiKeyStore:
    def __init__(self, path: Path, default_ttl_days: int, warn_days: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.default_ttl_s = default_ttl_days * 86400
        self.warn_s = warn_days * 86400
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, ApiKeyRecord] = {}
        if path.exists():
            self._records = {r["name"]: ApiKeyRecord(**r) for r in json.loads(path.read_text())["keys"]}

    def _write(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"keys": [asdict(r) for r in self._records.values()]}, indent=2).encode())

    def create(self, name: str, ttl_s: float | None = None) -> tuple[str, ApiKeyRecord]:
        if not NAME.match(name):
            raise ApiKeyNameInvalid(f"invalid API key name {name!r} (lowercase letters, digits, dashes)")
        with self._lock:
            existing = self._records.get(name)
            if existing is not None and not existing.revoked_at and existing.expires_at > self.clock():
                raise ApiKeyExists(f"an API key named {name!r} exists; revoke it first")
            key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
            now = self.clock()
            record = ApiKeyRecord(name, key_id, hashlib.sha256(secret.encode()).hexdigest(), now,
                                  now + (ttl_s or self.default_ttl_s))
            self._records[name] = record
            self._write()
        return f"onx_{key_id}_{secret}", record

    def revoke(self, name: str) -> ApiKeyRecord:
        with self._lock:
            record = self._records.get(name)
            if record is None:
                raise ApiKeyNotFound(f"no API key named {name!r}")
            record = replace(record, revoked_at=record.revoked_at or self.clock())
            self._records[name] = record
            self._write()
        return record

    def entries(self) -> list[dict[str, object]]:
        now = self.clock()
        return [r.public(now, self.warn_s) for r in sorted(self._records.values(), key=lambda r: r.name)]

    def verify(self, key: str) -> tuple[Principal, float | None]:
        """The key's principal, and its remaining seconds when inside the warning window."""
        match = _KEY.match(key)
        if not match:
            raise ApiKeyRejected("malformed API key")
        key_id, secret = match.groups()
        record = next((r for r in self._records.values() if r.key_id == key_id), None)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if record is None or not hmac.compare_digest(digest, record.secret_sha256):
            raise ApiKeyRejected("unknown API key")
        now = self.clock()
        if record.revoked_at:
            raise ApiKeyRejected("API key revoked")
        if record.expires_at <= now:
            raise ApiKeyRejected("API key expired")
        left = record.expires_at - now
        return Principal(kind="apikey", name=record.name), left if left <= self.warn_s else None
