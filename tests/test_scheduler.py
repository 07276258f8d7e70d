"""RotationScheduler: overdue rotations run at start, judged by the keystore's and store's injected clocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from onexd.config import config_from_data
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key
from onexd.scheduler import RotationScheduler
from onexd.secrets.store import EncryptedStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _parts(tmp_path: Path, clock: Clock) -> tuple[RotationScheduler, Keystore, EncryptedStore]:
    master = load_master_key(tmp_path, {"ONEXD_MASTER_KEY": "s" * 32})
    keystore = Keystore(tmp_path / "keys.json", master, clock=clock)
    store = EncryptedStore(tmp_path / "store.json", master, clock=clock)
    config = config_from_data({"rotation": {"signingKeysEverySeconds": 3600, "secretStoreEverySeconds": 7200}},
                              "test")
    return RotationScheduler(config, keystore, store), keystore, store


def _started_and_stopped(scheduler: RotationScheduler) -> None:
    async def go() -> None:
        scheduler.start()
        scheduler.stop()

    asyncio.run(go())


def test_overdue_rotations_run_at_start(tmp_path: Path) -> None:
    """Keys older than their period are rotated when the scheduler starts; fresh ones are not."""
    clock = Clock()
    scheduler, keystore, store = _parts(tmp_path, clock)
    kid, data_key_age = keystore.signing_key()[0], store.data_key_age_s()
    _started_and_stopped(scheduler)
    assert keystore.signing_key()[0] == kid and store.data_key_age_s() == data_key_age
    clock.now += 7200
    _started_and_stopped(scheduler)
    assert keystore.signing_key()[0] != kid and store.data_key_age_s() == 0.0
