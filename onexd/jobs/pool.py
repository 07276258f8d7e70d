"""The warm pool: slots created and started ahead of time, claimed by exactly one job each, refilled behind.

A slot is made from translate()'s ContainerSpec for its key (engine/pool.py); a job claims only a slot whose shape
equals its own spec's, so the pool can miss but never changes a sandbox. No slot ever runs a second job: the
runtime removes it when its job ends. Secrets reach a slot only when it is claimed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onexd.config import PoolConfig
from onexd.engine.pool import PoolTarget, job_line, pool_key, pool_targets, slot_spec
from onexd.engine.translate import HostPaths, translate
from onexd.errors import OnexdError, RuntimeFailure, SlotLost
from onexd.policy.snapshot import Snapshot
from onexd.runtime.base import Images, OutputSink, RunResult, WarmSlots
from onexd.secrets.staging import write_secret_files
from onexd.spec import JOB_LABEL, POLICY_LABEL, ContainerSpec

log = logging.getLogger("onexd.pool")
SLOT_PREFIX = "onexd-slot-"
HOLDOFF_S = 0.05
# (event type, data, policy digest): slot creation and removal, for the audit trail.
PoolEvent = Callable[[str, dict[str, Any], str], None]
# A node's code as a host directory (the runner's content-addressed store).
NodeSource = Callable[[Snapshot, str], str | None]


@dataclass(frozen=True, slots=True)
class _Want:
    target: PoolTarget  # the first target of the key: its slots are made from it
    snapshot: Snapshot
    image_id: str
    node_source: str | None
    size: int  # targets of one shape (a node and ad-hoc jobs of its profile, say) share slots: sizes add up
    names: str


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    key: str
    target: str
    digest: str  # the policy snapshot the slot was created from
    created_at: float
    secrets_dir: str | None


@dataclass(frozen=True, slots=True)
class PoolCounters:
    claims: int = 0
    misses: int = 0
    refills: int = 0


class WarmPool:
    """Keeps each wanted key at its size within the host ceiling; claims and refills; drains on change."""

    def __init__(self, runtime: WarmSlots, images: Images, config: PoolConfig, staging_dir: Path,
                 node_source: NodeSource, clock: Callable[[], float] = time.time,
                 audit_slot: PoolEvent | None = None, jobs_waiting: Callable[[], int] = lambda: 0,
                 interval_s: float = 1.0) -> None:
        self.runtime, self.images, self.config = runtime, images, config
        self.staging_dir, self.node_source, self.clock = staging_dir, node_source, clock
        self.audit_slot = audit_slot or (lambda type_, data, digest: None)
        self.jobs_waiting = jobs_waiting
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._wants: dict[str, _Want] = {}
        self._image_ids: dict[str, str] = {}
        self._idle: dict[str, deque[Slot]] = {}
        self._counts: dict[str, PoolCounters] = {}
        self._snapshot: Snapshot | None = None
        self._ended: list[tuple[str, dict[str, Any], str]] = []  # removal events of slots whose job ended
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what to keep warm -------------------------------------------------------------------------------

    def configure(self, snapshot: Snapshot) -> None:
        """The keys a snapshot wants (with the images as they are now); slots of any other key are drained."""
        wants: dict[str, _Want] = {}
        image_ids: dict[str, str] = {}
        if self.config.maxContainers > 0:
            for target in pool_targets(snapshot):
                assert target.decision.sandbox is not None
                image = target.decision.sandbox.image
                if image not in image_ids:
                    try:
                        info = self.images.image(image)
                    except RuntimeFailure:  # an engine away must not fail a reload: its jobs go cold meanwhile
                        info = None
                    if info is None:
                        continue  # jobs go cold (and say why) until the image is built
                    image_ids[image] = info.image_id
                try:
                    node_source = self.node_source(snapshot, target.request.node) if target.request.node else None
                    spec = self._translate(snapshot, target, "0" * 32, node_source, "/nonexistent")
                except (OnexdError, OSError) as exc:
                    log.warning("pool target skipped", extra={"target": target.name, "error": str(exc)})
                    continue
                key = pool_key(spec, image_ids[image])
                known = wants.get(key)
                wants[key] = _Want(target, snapshot, image_ids[image], node_source, target.size, target.name) \
                    if known is None else dataclasses.replace(known, size=known.size + target.size,
                                                              names=f"{known.names},{target.name}")
        with self._lock:
            self._snapshot, self._wants, self._image_ids = snapshot, wants, image_ids
            stale = {k: q for k, q in self._idle.items() if k not in wants}
            for key in stale:
                del self._idle[key]
        for queue in stale.values():
            for slot in queue:
                self._discard(slot, "drained")
        self._wake.set()

    @staticmethod
    def _translate(snapshot: Snapshot, target: PoolTarget, job_id: str, node_source: str | None,
                   secrets_dir: str) -> ContainerSpec:
        box = target.decision.sandbox
        assert box is not None
        paths = HostPaths(node_source=node_source, secrets_dir=secrets_dir if box.secrets else None)
        return translate(snapshot, target.decision, target.request, job_id, paths)

    # --- claiming ----------------------------------------------------------------------------------------

    def _claim(self, spec: ContainerSpec) -> Slot | None:
        image_id = self._image_ids.get(spec.image)
        if image_id is None:
            return None
        key = pool_key(spec, image_id)
        with self._lock:
            if key not in self._wants:
                return None
            queue = self._idle.get(key)
            counts = self._counts.get(key, PoolCounters())
            if not queue:  # refilled by the next round: not now, beside the cold job's own start
                self._counts[key] = PoolCounters(counts.claims, counts.misses + 1, counts.refills)
                return None
            slot = queue.popleft()
            self._counts[key] = PoolCounters(counts.claims + 1, counts.misses, counts.refills)
        return slot

    def run(self, spec: ContainerSpec, secret_values: Mapping[str, bytes], stdin: bytes,
            cancel: threading.Event | None = None, on_output: OutputSink | None = None
            ) -> tuple[RunResult, Slot] | None:
        """Run a job in a warm slot of its key, or None (nothing ran: take the cold path). Never waits for a
        slot to warm."""
        line = job_line(spec)
        if line is None:
            return None
        slot = self._claim(spec)
        if slot is None:
            return None
        if slot.digest != dict(spec.labels).get(POLICY_LABEL):  # equal shapes say so; checked, not assumed
            self._discard(slot, "digest-mismatch")
            return None
        try:
            with self._secrets_in(slot, spec, secret_values):
                result = self.runtime.run_slot(slot.name, spec, line, stdin, cancel, on_output)
        except SlotLost as exc:
            log.warning("warm slot lost; running cold", extra={"slot": slot.name, "error": str(exc)})
            self._discard(slot, "lost")
            return None
        finally:
            if slot.secrets_dir is not None:
                shutil.rmtree(slot.secrets_dir, ignore_errors=True)
            # The refill starts when the job has ended: creating a container beside a short job's exit would
            # make the job wait for the engine.
            self._wake.set()
        with self._lock:  # audited by the pool's thread: an fsync the job's result need not wait for
            self._ended.append(("pool.slot.removed", {"slot": slot.name, "key": slot.key, "target": slot.target,
                                                      "why": "job-ended", "job": dict(spec.labels).get(JOB_LABEL)},
                                slot.digest))
        return result, slot

    @contextlib.contextmanager
    def _secrets_in(self, slot: Slot, spec: ContainerSpec, values: Mapping[str, bytes]) -> Iterator[None]:
        """Stage the job's secrets into the slot's (memory-backed) directory at claim; removed with the job."""
        if slot.secrets_dir is None or not values:
            yield
            return
        uid, gid = (int(x) for x in spec.user.split(":"))
        write_secret_files(Path(slot.secrets_dir), values, uid, gid)
        yield

    # --- refilling ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="onexd-pool", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            if self._wake.wait(self.interval_s):
                # Woken by a job's end: let the daemon finish that job before the engine gets new work.
                self._stopping.wait(HOLDOFF_S)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.tick()
            except Exception:  # the pool is an optimisation: a failure here must never stop the daemon
                log.exception("pool maintenance failed")

    def _flush(self) -> None:
        with self._lock:
            ended, self._ended = self._ended, []
        for event in ended:
            self.audit_slot(*event)

    def tick(self) -> None:
        """One round: audit slots whose job ended, follow image rebuilds, retire old idle slots, then create the
        slots that are missing."""
        self._flush()
        snapshot = self._snapshot
        if snapshot is None:
            return
        with self._lock:
            ids = dict(self._image_ids)
        wanted = {t.decision.sandbox.image for t in pool_targets(snapshot) if t.decision.sandbox is not None}
        if self.config.maxContainers > 0 and any(
                ids.get(image) != getattr(self.images.image(image), "image_id", None) for image in wanted):
            # An image was rebuilt (its keys changed: their slots drain), built at last, or the engine is back.
            self.configure(snapshot)
        now = self.clock()
        with self._lock:
            old = [s for q in self._idle.values() for s in q if now - s.created_at > self.config.maxIdleSeconds]
            for slot in old:
                self._idle[slot.key].remove(slot)
        for slot in old:
            self._discard(slot, "idle-too-long")
        while not self._stopping.is_set() and self.jobs_waiting() == 0:  # queued jobs have the engine first
            want = self._next_missing()
            if want is None:
                return
            key, target = want
            if not self._create(key, target):
                return

    def _next_missing(self) -> tuple[str, _Want] | None:
        with self._lock:
            total = sum(len(q) for q in self._idle.values())
            if total >= self.config.maxContainers:
                return None
            short = [(len(self._idle.get(k, ())), k) for k, w in self._wants.items()
                     if len(self._idle.get(k, ())) < w.size]
            if not short:
                return None
            key = min(short)[1]  # the emptiest key first: every key gets a slot before any gets two
            return key, self._wants[key]

    def _create(self, key: str, want: _Want) -> bool:
        slot_id = secrets.token_hex(8)
        name = f"{SLOT_PREFIX}{slot_id}"
        box = want.target.decision.sandbox
        assert box is not None
        secrets_dir: str | None = None
        if box.secrets:  # empty, ours, 0700 until a claim fills it for the job's uid
            secrets_dir = str(self.staging_dir / f"slot-{slot_id}")
            os.mkdir(secrets_dir, 0o700)
        try:
            spec = self._translate(want.snapshot, want.target, slot_id, want.node_source, secrets_dir or "")
            slot = slot_spec(spec, name, key)
            if pool_key(slot, want.image_id) != key:  # a slot is its key's shape, or nothing
                raise OnexdError(f"slot for {want.target.name} does not have its key's shape")
            self.runtime.create_slot(slot)
        except (OnexdError, OSError) as exc:
            if secrets_dir is not None:
                shutil.rmtree(secrets_dir, ignore_errors=True)
            log.warning("warm slot not created", extra={"target": want.target.name, "error": str(exc)})
            return False
        created = Slot(name, key, want.names, want.snapshot.digest, self.clock(), secrets_dir)
        self.audit_slot("pool.slot.created", {"slot": name, "key": key, "target": want.names,
                                            "image": want.image_id}, want.snapshot.digest)
        with self._lock:
            current = key in self._wants and not self._stopping.is_set()
            if current:
                self._idle.setdefault(key, deque()).append(created)
                c = self._counts.get(key, PoolCounters())
                self._counts[key] = PoolCounters(c.claims, c.misses, c.refills + 1)
        if not current:  # drained (or stopping) while it was being created
            self._discard(created, "drained")
        return current

    def _discard(self, slot: Slot, why: str) -> None:
        try:
            self.runtime.remove_slot(slot.name)
        except RuntimeFailure as exc:  # the reaper removes it at the next start
            log.warning("warm slot not removed", extra={"slot": slot.name, "error": str(exc)})
        if slot.secrets_dir is not None:
            shutil.rmtree(slot.secrets_dir, ignore_errors=True)
        self.audit_slot("pool.slot.removed", {"slot": slot.name, "key": slot.key, "target": slot.target, "why": why,
                                            "job": None}, slot.digest)

    def stop(self) -> None:
        """Stop refilling and remove every idle slot; wait for removals under way."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(60)
        with self._lock:
            idle = [s for q in self._idle.values() for s in q]
            self._idle.clear()
        for slot in idle:
            self._discard(slot, "stopping")
        self.runtime.settle()
        self._flush()

    # --- what it looks like ------------------------------------------------------------------------------

    def state(self) -> list[dict[str, Any]]:
        """Per key: target, digest, wanted size, idle slots and their ages, claims, misses, refills."""
        now = self.clock()
        with self._lock:
            out = []
            for key, want in sorted(self._wants.items(), key=lambda kv: kv[1].names):
                idle = list(self._idle.get(key, ()))
                c = self._counts.get(key, PoolCounters())
                out.append({"key": key, "target": want.names, "policy": want.snapshot.digest,
                            "image": want.image_id, "size": want.size, "idle": len(idle),
                            "ages": [round(now - s.created_at, 1) for s in idle],
                            "claims": c.claims, "misses": c.misses, "refills": c.refills})
            return out

    def idle_names(self) -> list[str]:
        with self._lock:
            return sorted(s.name for q in self._idle.values() for s in q)


def warm_slots_of(runtime: object) -> WarmSlots | None:
    """The runtime's slots role, if it has one (a backend without slots runs every job cold)."""
    return runtime if isinstance(runtime, WarmSlots) else None

