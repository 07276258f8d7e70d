"""Audit state files are hostile input: a torn or forged line never stops the daemon or crashes verify."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onexd.audit.checkpoints import CHECKPOINTS
from onexd.audit.trail import AuditUnavailable
from tests.audit.test_trail import Trail


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _filled(root: Path) -> Trail:
    t = Trail(root)
    for i in range(30):
        t.log.append("test.event", "UnixUser:root", "success", {"i": i})
    assert t.checkpointer is not None
    t.checkpointer.write("test")
    return t


def test_finding_18_torn_checkpoint_line_is_cut_at_start(tmp_path: Path) -> None:
    """A crash mid-write leaves half a checkpoint line: the next start cuts it and the trail verifies."""
    t = _filled(tmp_path)
    t.log.close()
    path = tmp_path / "audit" / CHECKPOINTS
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[-1][:37])
    again = Trail(tmp_path)  # must not raise
    try:
        again.log.append("test.event", "UnixUser:root", "success", {"after": True})
        assert again.checkpointer is not None
        again.checkpointer.write("test")
        assert path.read_bytes().startswith(whole)
        result = again.verify()
        assert result.ok, result
    finally:
        again.log.close()


_hostile_lines = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"[1]", b'"x"', b"1", b"null", b'{"jws": 5}', b'{"jws": "a.b"}', b'{"jws": "!!.!!.!!"}',
                     b'{"toSeq": 3}', b'{"jws": null}']),
    st.builds(lambda h, p: json.dumps({"jws": f"{_b64(h)}.{_b64(p)}.sig"}).encode(),
              st.one_of(st.just({"alg": "EdDSA", "kid": ["x"]}), st.just([1]), st.just({"alg": "none"})),
              st.one_of(st.just({"toSeq": "9"}), st.just({"toSeq": -1}), st.just([]), st.just({"toSeq": 10**30}))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=_hostile_lines.filter(lambda b: b.replace(b"\n", b" ").strip()),
       position=st.sampled_from(["append", "prepend"]))
def test_finding_18_hostile_checkpoint_lines_never_crash(tmp_path_factory: pytest.TempPathFactory, line: bytes,
                                                          position: str) -> None:
    """Any forged checkpoint line: verify reports a bad seq (never raises), and the trail still opens."""
    root = tmp_path_factory.mktemp("trail")
    t = _filled(root)
    t.log.close()
    path = root / "audit" / CHECKPOINTS
    whole = path.read_bytes()
    forged = line.replace(b"\n", b" ") + b"\n"
    path.write_bytes(whole + forged if position == "append" else forged + whole)
    result = t.verify()
    assert not result.ok and result.first_bad_seq is not None
    again = Trail(root)
    again.log.close()


def test_finding_18_writer_survives_an_unexpected_error(tmp_path: Path) -> None:
    """A non-OSError inside the writer fails that batch only; later appends are written and the chain holds."""
    t = Trail(tmp_path)
    try:
        t.log.append("test.event", "UnixUser:root", "success", {"i": 0})
        real_rotate = t.log.on_rotate

        def broken(seq: int) -> None:
            raise RuntimeError("boom")

        t.log.on_rotate = broken
        t.log.max_segment_bytes = 1  # the next write rotates, and rotation raises
        with pytest.raises(AuditUnavailable):  # enforced: the action this event records is refused
            t.log.append("test.event", "UnixUser:root", "success", {"i": 1})
        t.log.on_rotate = real_rotate
        t.log.max_segment_bytes = 1 << 20
        later = threading.Thread(target=t.log.append, args=("test.event", "UnixUser:root", "success", {"i": 2}),
                                 daemon=True)
        later.start()
        later.join(timeout=10)
        assert not later.is_alive(), "the audit writer died: later appends wait forever"
        result = t.verify()
        assert result.ok, result
    finally:
        t.log.close()


def test_finding_18_forged_trail_line_does_not_stop_start_or_read(tmp_path: Path) -> None:
    """A complete but non-object last record is cut at start like a torn one; read() skips non-records."""
    t = _filled(tmp_path)
    t.log.close()
    seg = sorted((tmp_path / "audit").glob("*.jsonl"))
    seg = [p for p in seg if p.name != CHECKPOINTS]
    seg[-1].write_bytes(seg[-1].read_bytes() + b"[1]\n")
    again = Trail(tmp_path)
    try:
        events = again.log.read(0)
        assert all(isinstance(e, dict) for e in events)
        again.log.append("test.event", "UnixUser:root", "success", {"after": True})
        assert again.verify().ok
    finally:
        again.log.close()
