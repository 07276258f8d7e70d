"""The audit trail: chaining, checkpoints, recovery, and detection of every kind of tampering."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from onexd.audit.checkpoints import CHECKPOINTS, Checkpointer, VerifyResult, verify_trail
from onexd.audit.trail import REDACTED, AuditLog, segments
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key


class Trail:
    def __init__(self, root: Path, segment_bytes: int = 4000, every: int = 10) -> None:
        self.root = root
        self.keystore = Keystore(root / "keys.json", load_master_key(root, {"ONEXD_MASTER_KEY": "k" * 32}))
        self.checkpointer: Checkpointer | None = None
        self.log = AuditLog(root / "audit", max_segment_bytes=segment_bytes, keep_segments=1000,
                            on_event=lambda e: self.checkpointer.observe(e) if self.checkpointer else None,
                            on_rotate=lambda s: self.checkpointer.at_boundary(s) if self.checkpointer else None)
        self.checkpointer = Checkpointer(self.log, self.keystore.signing_key, every)

    def verify(self) -> VerifyResult:
        return verify_trail(self.root / "audit", self.keystore.public_key)


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Trail]:
    t = Trail(tmp_path)
    for i in range(120):
        t.log.append("test.event", "UnixUser:root", "success", {"i": i})
    assert t.checkpointer is not None
    t.checkpointer.write("test")
    yield t
    t.log.close()


def _seg_lines(t: Trail, index: int) -> tuple[Path, list[bytes]]:
    path = segments(t.root / "audit")[index][1]
    return path, path.read_bytes().splitlines(keepends=True)


def _seq(line: bytes) -> int:
    return int(json.loads(line)["seq"])


def test_intact_trail_verifies(trail: Trail) -> None:
    """Seq is contiguous over several segments, every checkpoint verifies."""
    result = trail.verify()
    assert result.ok, result
    assert result.events == trail.log.last_seq and result.checkpoints >= 12
    assert len(segments(trail.root / "audit")) > 3


def test_flipped_byte_is_detected_at_its_seq(trail: Trail) -> None:
    """One changed character in a record: that record's seq."""
    path, lines = _seg_lines(trail, 1)
    victim = lines[3]
    lines[3] = victim.replace(b'"i":', b'"j":', 1)
    path.write_bytes(b"".join(lines))
    result = trail.verify()
    assert (result.ok, result.first_bad_seq) == (False, _seq(victim))


def test_deleted_line_is_detected(trail: Trail) -> None:
    """A removed record: its seq."""
    path, lines = _seg_lines(trail, 1)
    victim = lines.pop(2)
    path.write_bytes(b"".join(lines))
    assert trail.verify().first_bad_seq == _seq(victim)


def test_swapped_lines_are_detected(trail: Trail) -> None:
    """Two records exchanged: the first of them."""
    path, lines = _seg_lines(trail, 2)
    first = _seq(lines[1])
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    assert trail.verify().first_bad_seq == first


def test_duplicated_line_is_detected(trail: Trail) -> None:
    """A record repeated: the duplicated seq."""
    path, lines = _seg_lines(trail, 1)
    lines.insert(3, lines[2])
    path.write_bytes(b"".join(lines))
    assert trail.verify().first_bad_seq == _seq(lines[2])


def test_cut_second_half_of_a_segment_is_detected(trail: Trail) -> None:
    """A segment truncated in the middle: the first missing seq (checkpoints cover what was cut)."""
    path, lines = _seg_lines(trail, 1)
    keep = len(lines) // 2
    path.write_bytes(b"".join(lines[:keep]))
    assert trail.verify().first_bad_seq == _seq(lines[keep])


def test_deleted_segment_is_detected(trail: Trail) -> None:
    """A whole segment removed: its first seq."""
    path, lines = _seg_lines(trail, 2)
    path.unlink()
    assert trail.verify().first_bad_seq == _seq(lines[0])


def test_truncated_tail_covered_by_a_checkpoint_is_detected(trail: Trail) -> None:
    """Records cut from the end of the last segment are caught by the checkpoint that covered them."""
    for i in range(5):
        trail.log.append("tail", None, "success", {"i": i})
    assert trail.checkpointer is not None
    trail.checkpointer.write("test")  # covers the five; its own trail event comes after
    path, lines = _seg_lines(trail, -1)
    path.write_bytes(b"".join(lines[:-4]))
    result = trail.verify()
    assert result.first_bad_seq == _seq(lines[-4])


def test_replaced_checkpoint_is_detected(trail: Trail, tmp_path: Path) -> None:
    """A checkpoint re-signed by another key fails, naming the seq it claims to cover (or before)."""
    other = Keystore(tmp_path / "other.json", load_master_key(tmp_path / "o", {"ONEXD_MASTER_KEY": "o" * 32}))
    from onexd.crypto import jws_sign

    path = trail.root / "audit" / CHECKPOINTS
    lines = path.read_bytes().splitlines()
    import base64

    token = json.loads(lines[3])["jws"]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    kid, key = other.signing_key()
    forged = jws_sign({**payload, "kid": kid}, key, "onexd-audit-checkpoint+jws")
    lines[3] = json.dumps({"toSeq": payload["toSeq"], "jws": forged}).encode()
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = trail.verify()
    assert not result.ok and result.first_bad_seq == payload["fromSeq"]


def test_deleted_checkpoint_is_detected(trail: Trail) -> None:
    """Removing a checkpoint breaks the signature chain at the next one."""
    path = trail.root / "audit" / CHECKPOINTS
    lines = path.read_bytes().splitlines()
    removed = lines.pop(2)
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = trail.verify()
    assert not result.ok and result.first_bad_seq == json.loads(
        __import__("base64").urlsafe_b64decode(json.loads(removed)["jws"].split(".")[1] + "=="))["fromSeq"]


def test_torn_last_line_is_cut_on_restart_and_the_chain_continues(tmp_path: Path) -> None:
    """A crash mid-write leaves half a line: the next start cuts it, seq continues, verify passes."""
    t = Trail(tmp_path)
    for i in range(5):
        t.log.append("e", None, "success", {"i": i})
    t.log.close()
    path = segments(tmp_path / "audit")[-1][1]
    with path.open("ab") as f:
        f.write(b'{"seq": 6, "data": {"half')
    t2 = Trail(tmp_path)
    assert t2.log.last_seq == 5
    assert t2.log.append("after", None) == 6
    t2.log.close()
    assert t2.verify().ok


def test_concurrent_appends_keep_seq_contiguous(tmp_path: Path) -> None:
    """Many threads appending at once: every seq once, in order, chained."""
    t = Trail(tmp_path, segment_bytes=50_000, every=100)
    threads = [threading.Thread(target=lambda: [t.log.append("c", None) for _ in range(200)]) for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.log.close()
    result = t.verify()
    assert result.ok and result.events == t.log.last_seq >= 3200


def test_values_under_secret_names_are_redacted(tmp_path: Path) -> None:
    """A field named like a secret never keeps its value in the trail."""
    t = Trail(tmp_path)
    t.log.append("e", None, "success", {"password": "hunter2", "apiKey": "onx_x", "nested": {"token": "abc"},
                                        "secretValue": "v4lue", "secret": "db-password-name", "job": "j1"})
    t.log.close()
    event = t.log.read(0, 10)[0]
    # `secret` holds a secret's *name* (what onexd records on access); values never get a field of their own.
    assert event["data"] == {"password": REDACTED, "apiKey": REDACTED, "nested": {"token": REDACTED},
                             "secretValue": REDACTED, "secret": "db-password-name", "job": "j1"}
    raw = b"".join(p.read_bytes() for _, p in segments(tmp_path / "audit"))
    assert b"hunter2" not in raw and b'"abc"' not in raw  # quoted: a hex hash may hold abc


def test_retention_keeps_a_verifiable_trail(tmp_path: Path) -> None:
    """Old segments removed by retention: what remains still joins a signed checkpoint and verifies."""
    t = Trail(tmp_path, segment_bytes=3000, every=1000)
    t.log.keep_segments = 3
    for i in range(200):
        t.log.append("e", None, "success", {"i": i})
    t.log.close()
    assert segments(tmp_path / "audit")[0][0] > 1
    assert t.verify().ok
