"""The last good version of every bundle, persisted in the state directory.

STATE/policy/active.json maps bundle directories to their active name, version and digest; a copy of each
active bundle's files lives in STATE/policy/bundles/<digest>/. A restart with a broken policy directory comes
up on these copies (reported as degraded); the downgrade rule compares against them.

STATE/policy/history.json keeps, per bundle name, the last version that was active, and survives the bundle's
removal: deleting a bundle, reloading and restoring an older signed version is a downgrade like any other (it
needs the explicit, audited rollback).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from onexd.fsutil import atomic_write
from onexd.policy.loader import LoadLimits, ParsedBundle, parse_bundle
from onexd.policy.schema import SchemaSet

log = logging.getLogger("onexd.policy")


@dataclass(frozen=True, slots=True)
class ActiveEntry:
    dir_name: str
    name: str
    version: str
    digest: str
    activated_at: float


class BundleStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bundles_dir = root / "bundles"
        self.bundles_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.index = root / "active.json"
        self.history_file = root / "history.json"

    def entries(self) -> dict[str, ActiveEntry]:
        if not self.index.exists():
            return {}
        data = json.loads(self.index.read_text())
        return {d: ActiveEntry(**e) for d, e in data.items()}

    def history(self) -> dict[str, tuple[str, str]]:
        """bundle name -> (version, digest) last active, including bundles since removed."""
        try:
            data = json.loads(self.history_file.read_text())
            return {str(name): (str(e["version"]), str(e["digest"])) for name, e in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # Unreadable history: the active index still guards what is active; never fail the reload over it.
            log.warning("policy history unreadable; downgrade checks fall back to the active bundles",
                        extra={"file": str(self.history_file)})
            return {}

    def load(self, schemas: SchemaSet, limits: LoadLimits, display_root: str) -> dict[str, ParsedBundle]:
        """The persisted bundles, parsed again (they passed before; parsing restores the in-memory form)."""
        out = {}
        for dir_name, entry in self.entries().items():
            path = self.bundles_dir / entry.digest
            if path.is_dir():
                parsed = parse_bundle(path, f"{display_root.rstrip('/')}/{dir_name}", schemas, limits)
                # The copy lives under its digest; the bundle is still known by its directory name.
                out[dir_name] = _renamed(parsed, dir_name)
        return out

    def save(self, accepted: list[ParsedBundle], previous: Mapping[str, ActiveEntry]) -> dict[str, ActiveEntry]:
        """Persist the accepted set: copy new digests, rewrite the index atomically, drop unused copies."""
        now = time.time()
        entries = {}
        for bundle in accepted:
            old = previous.get(bundle.dir_name)
            activated = old.activated_at if old is not None and old.digest == bundle.digest else now
            entries[bundle.dir_name] = ActiveEntry(bundle.dir_name, bundle.name, bundle.version, bundle.digest,
                                                   activated)
            target = self.bundles_dir / bundle.digest
            if not target.exists():
                tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.bundles_dir))
                for rel, data in bundle.files.items():
                    path = tmp / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                tmp.rename(target)
        history = self.history()
        history.update({e.name: (e.version, e.digest) for e in entries.values()})
        # History first: a crash between the two writes leaves a history at least as new as the index.
        atomic_write(self.history_file, _json({n: {"version": v, "digest": d} for n, (v, d) in history.items()}))
        atomic_write(self.index, _json({d: asdict(e) for d, e in entries.items()}))
        keep = {e.digest for e in entries.values()}
        for path in self.bundles_dir.iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
        return entries


def _renamed(bundle: ParsedBundle, dir_name: str) -> ParsedBundle:
    return dataclasses.replace(bundle, dir_name=dir_name)


def _json(data: object) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()
