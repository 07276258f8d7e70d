"""APScheduler wiring only: key and data-key rotation, retirement of keys past their grace, and whatever else
the daemon runs periodically (audit checkpoints, shipping). Overdue rotations run at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from onexd.config import DaemonConfig
from onexd.keys.keystore import Keystore
from onexd.secrets.store import EncryptedStore

log = logging.getLogger("onexd.scheduler")


class RotationScheduler:
    def __init__(self, config: DaemonConfig, keystore: Keystore, store: EncryptedStore) -> None:
        self.config, self.keystore, self.store = config, keystore, store
        self._scheduler = AsyncIOScheduler()

    def rotate_signing_keys(self, reason: str) -> str:
        return self.keystore.rotate(self.config.grace_s, reason)

    def rotate_store(self, reason: str) -> str:
        return self.store.rotate(reason)

    def start(self) -> None:
        every_keys = self.config.rotation.signingKeysEverySeconds
        every_store = self.config.rotation.secretStoreEverySeconds
        if self.keystore.active_age_s() >= every_keys:
            self.rotate_signing_keys("overdue at start")
        if self.store.data_key_age_s() >= every_store:
            self.rotate_store("overdue at start")
        self.keystore.retire_expired()
        self._add(self.rotate_signing_keys, every_keys, "signing keys", "schedule")
        self._add(self.rotate_store, every_store, "secret store", "schedule")
        self._add(self.keystore.retire_expired, min(60, every_keys, self.config.grace_s), "retire keys")
        self._scheduler.start()

    def every(self, seconds: float, name: str, fn: Callable[..., Any], *args: str) -> None:
        """Run fn (on a worker thread) every `seconds`; call before start()."""
        self._add(fn, seconds, name, *args)

    def _add(self, fn: Callable[..., Any], every_s: float, name: str, *args: str) -> None:
        async def job() -> None:
            try:
                await asyncio.to_thread(fn, *args)
            except Exception:
                log.exception("scheduled job failed", extra={"job": name})

        self._scheduler.add_job(job, "interval", seconds=every_s, id=name, max_instances=1, coalesce=True)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
