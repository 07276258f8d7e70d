"""Signed checkpoints (CloudTrail-digest style) and verification of the whole trail.

A checkpoint is a compact JWS over {fromSeq, toSeq, lastHash, prevSignature, kid, ts}, signed with the
keystore's active key, appended to STATE/audit/checkpoints.jsonl every N events or T seconds. Chaining the
previous signature makes deleting or replacing a checkpoint detectable; `lastHash` pins the trail, so cutting
records or segments covered by a checkpoint is detectable too. Retired keys still verify old checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onexd.audit.trail import GENESIS, AuditLog, event_hash, segments
from onexd.crypto import JwsError, PrivateKey, PublicKey, jws_sign, jws_verify

log = logging.getLogger("onexd.audit")
JWS_TYPE = "onexd-audit-checkpoint+jws"
CHECKPOINTS = "checkpoints.jsonl"


class Checkpointer:
    def __init__(self, trail: AuditLog, signer: Callable[[], tuple[str, PrivateKey]], every_events: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.trail, self.signer, self.every_events, self.clock = trail, signer, every_events, clock
        self.path = trail.dir / CHECKPOINTS
        self._lock = threading.Lock()
        self._since = 0
        self._durable = (trail.last_seq, trail.last_hash)
        self._last_to, self._prev_sig = self._last()

    def _last(self) -> tuple[int, str]:
        """Where the checkpoint chain continues. A torn last line (a crash mid-write: the checkpoint was never
        acknowledged) is cut; a complete line that does not parse is skipped here and reported by verify."""
        if not self.path.exists():
            return 0, ""
        raw = self.path.read_bytes()
        good = raw.rfind(b"\n") + 1
        if good < len(raw):
            log.warning("cut a torn checkpoint line at the end of the checkpoint file",
                        extra={"bytes": len(raw) - good})
            with open(self.path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        for line in reversed(raw[:good].splitlines()):
            parsed = _parse_line(line)
            if parsed is not None:
                token, _ = parsed
                claimed = _claimed_to_seq(token)
                if claimed is not None:
                    return claimed, token.split(".")[2]
            if line.strip():
                log.error("a checkpoint line is not valid; audit verify will report it")
        return 0, ""

    def at_boundary(self, last_seq: int) -> None:
        """A segment closes at last_seq: checkpoint exactly there, so retention can later drop whole segments
        and the first kept record still joins a signed checkpoint. Runs on the trail's writer thread, which must
        not wait for its own queue: the trail event for this checkpoint is appended from another thread."""
        path = self.trail.dir
        last_hash = None
        for _, seg in reversed(segments(path)):
            lines = seg.read_bytes().splitlines()
            if lines:
                event = json.loads(lines[-1])
                if event["seq"] == last_seq:
                    last_hash = event["hash"]
                break
        if last_hash is None:
            return
        with self._lock:
            if last_seq > self._durable[0]:
                self._durable = (last_seq, last_hash)
            covered = self._write_locked(last_seq, last_hash)
        if covered is not None:
            threading.Thread(target=self.trail.append, args=("audit.checkpoint", "onexd", "success", covered),
                             daemon=True).start()

    def observe(self, event: dict[str, Any]) -> None:
        """Called for each durable event: counts towards the next checkpoint."""
        with self._lock:
            if event["seq"] > self._durable[0]:
                self._durable = (event["seq"], event["hash"])
            if event["type"] == "audit.checkpoint":
                return
            self._since += 1
            due = self._since >= self.every_events
        if due:
            self.write("events")

    def write(self, reason: str) -> int | None:
        """Checkpoint everything durable so far, if anything new; returns the covered toSeq."""
        with self._lock:
            covered = self._write_locked(*self._durable)
        if covered is None:
            return None
        self.trail.append("audit.checkpoint", "onexd", data={**covered, "reason": reason})
        return int(covered["toSeq"])

    def _write_locked(self, to_seq: int, last_hash: str) -> dict[str, Any] | None:
        if to_seq <= self._last_to:
            return None
        kid, key = self.signer()
        payload = {"fromSeq": self._last_to + 1, "toSeq": to_seq, "lastHash": last_hash,
                   "prevSignature": self._prev_sig, "kid": kid, "ts": self.clock()}
        token = jws_sign(payload, key, JWS_TYPE)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, json.dumps({"toSeq": to_seq, "jws": token}).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last_to, self._prev_sig, self._since = to_seq, token.split(".")[2], 0
        return {"fromSeq": payload["fromSeq"], "toSeq": to_seq, "kid": kid}


def _b64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    events: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "checkpoints": self.checkpoints,
                "firstBadSeq": self.first_bad_seq, "reason": self.reason}


def verify_trail(directory: Path, public_key: Callable[[str], PublicKey | None]) -> VerifyResult:
    """Check the chain, the segment sequence and every checkpoint; name the first bad seq."""
    problems: list[tuple[int, str]] = []
    hashes: dict[int, str] = {}
    checkpoint_problems: list[tuple[int, str]] = []
    checkpoints = _read_checkpoints(directory, public_key, checkpoint_problems)
    segs = segments(directory)
    expected, prev_hash, count = None, GENESIS, 0
    if segs and segs[0][0] > 1:
        # Older segments were removed by retention: the first kept record must join a checkpoint exactly.
        boundary = segs[0][0] - 1
        covering = [c for c in checkpoints if c["toSeq"] == boundary]
        expected = segs[0][0]
        if covering:
            prev_hash = covering[0]["lastHash"]
        else:
            problems.append((expected, f"the trail starts at seq {expected} but no checkpoint covers seq {boundary}"))
            prev_hash = ""
    for first, path in segs:
        if expected is not None and first != expected:
            problems.append((min(first, expected), f"segment {path.name} starts at seq {first}, expected {expected} "
                                                   "(a segment or records are missing)"))
        expected = first if expected is None else expected
        for line in path.read_bytes().splitlines():
            try:
                event = json.loads(line)
                seq = int(event["seq"])
            except (ValueError, KeyError, TypeError):
                problems.append((expected, f"record at seq {expected} in {path.name} is not valid JSON (modified?)"))
                break
            if seq != expected:
                kind = "missing" if seq > expected else "duplicated or reordered"
                problems.append((min(seq, expected), f"expected seq {expected}, found {seq} ({kind})"))
                break
            if prev_hash and event.get("prevHash") != prev_hash:
                problems.append((seq, f"seq {seq} does not chain to the record before it"))
                break
            if event_hash(event) != event.get("hash"):
                problems.append((seq, f"seq {seq} was modified (hash mismatch)"))
                break
            hashes[seq], prev_hash, expected, count = event["hash"], event["hash"], seq + 1, count + 1
        if problems:
            break
    last = (expected or 1) - 1
    for c in checkpoints:
        if c["toSeq"] > last:
            problems.append((last + 1, f"a checkpoint covers seq {c['toSeq']} but the trail ends at {last} "
                                       "(records were cut)"))
        elif c["toSeq"] in hashes and hashes[c["toSeq"]] != c["lastHash"]:
            problems.append((c["toSeq"], f"the record at seq {c['toSeq']} differs from the one its checkpoint "
                                         "signed"))
    problems += checkpoint_problems
    if problems:
        seq, why = min(problems)
        return VerifyResult(False, count, len(checkpoints), seq, why)
    return VerifyResult(True, count, len(checkpoints))


def _read_checkpoints(directory: Path, public_key: Callable[[str], PublicKey | None],
                      problems: list[tuple[int, str]]) -> list[dict[str, Any]]:
    path = directory / CHECKPOINTS
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    prev_sig, prev_to = "", 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        parsed = _parse_line(line)
        if parsed is None:
            problems.append((prev_to + 1, "a checkpoint line is not valid"))
            break
        token, header_kid = parsed
        key = public_key(header_kid)
        try:
            verified = jws_verify(token, [key] if key is not None else [], JWS_TYPE)
        except JwsError as exc:
            claimed = _claimed_to_seq(token) or prev_to + 1
            problems.append((min(claimed, prev_to + 1), f"checkpoint up to seq {claimed} fails verification "
                                                        f"({exc})"))
            break
        payload = verified.payload
        if not _well_formed(payload):
            problems.append((prev_to + 1, "a signed checkpoint has missing or mistyped fields"))
            break
        if payload["prevSignature"] != prev_sig or payload["fromSeq"] != prev_to + 1:
            problems.append((prev_to + 1, f"checkpoint chain broken before seq {payload['toSeq']} (a checkpoint "
                                          "was deleted, replaced or reordered)"))
            break
        out.append(payload)
        prev_sig, prev_to = token.split(".")[2], payload["toSeq"]
    return out


def _parse_line(line: bytes) -> tuple[str, str] | None:
    """(compact JWS, header kid) of a checkpoint line, or None when the line is not one (hostile or corrupt)."""
    try:
        record = json.loads(line)
        token = record["jws"] if isinstance(record, dict) else None
        if not isinstance(token, str) or token.count(".") != 2:
            return None
        header = json.loads(_b64(token.split(".")[0]))
    except (ValueError, KeyError, TypeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    kid = header.get("kid", "") if isinstance(header, dict) else None
    return (token, kid) if isinstance(kid, str) else None


def _claimed_to_seq(token: str) -> int | None:
    """The toSeq an (unverified) checkpoint claims, for messages and for continuing the chain."""
    try:
        payload = json.loads(_b64(token.split(".")[1]))
    except (ValueError, TypeError):
        return None
    claimed = payload.get("toSeq") if isinstance(payload, dict) else None
    return claimed if isinstance(claimed, int) and not isinstance(claimed, bool) and claimed >= 0 else None


def _well_formed(payload: dict[str, Any]) -> bool:
    ints = [payload.get(k) for k in ("fromSeq", "toSeq")]
    return (all(isinstance(v, int) and not isinstance(v, bool) for v in ints)
            and isinstance(payload.get("lastHash"), str) and isinstance(payload.get("prevSignature"), str))
