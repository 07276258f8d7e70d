"""Audit benchmarks: durable append throughput (every event fsynced before it is acknowledged) and the cost of
verification per million events. Writes bench/results/audit.json.

  concurrent   32 threads, one append() each at a time (group commit shares fsyncs between them)
  batched      8 threads appending 50 events per call (append_many: one wait per batch)
  verify       verify_trail over the resulting trail (chain, segments, signed checkpoints), per million events
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _results import publish  # noqa: E402

from onexd.audit.checkpoints import Checkpointer, verify_trail  # noqa: E402
from onexd.audit.events import NewEvent  # noqa: E402
from onexd.audit.trail import AuditLog  # noqa: E402
from onexd.keys.keystore import Keystore  # noqa: E402
from onexd.keys.master import load_master_key  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="onexd-bench-audit-"))
    keystore = Keystore(work / "keys.json", load_master_key(work, {"ONEXD_MASTER_KEY": "b" * 32}))
    holder: dict[str, Checkpointer] = {}
    trail = AuditLog(work / "audit", max_segment_bytes=64 * 1024 * 1024,
                     on_event=lambda e: holder["cp"].observe(e) if "cp" in holder else None,
                     on_rotate=lambda s: holder["cp"].at_boundary(s) if "cp" in holder else None)
    holder["cp"] = Checkpointer(trail, keystore.signing_key, every_events=1000)
    data = {"job": "01a2131c0ddf5dd081aebf1703e6b52e", "node": "hello", "profile": "python-small", "zone": "none"}

    def run(threads: int, fn: object) -> float:
        workers = [threading.Thread(target=fn) for _ in range(threads)]  # type: ignore[arg-type]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - start

    singles = run(32, lambda: [trail.append("job.submitted", "UnixUser:root", "success", data) for _ in range(2000)])
    one = NewEvent("job.submitted", "UnixUser:root", "success", data)
    batched = run(8, lambda: [trail.append_many([one] * 50) for _ in range(500)])
    holder["cp"].write("bench")
    trail.close()
    events = trail.last_seq
    start = time.perf_counter()
    result = verify_trail(work / "audit", keystore.public_key)
    verify_s = time.perf_counter() - start
    assert result.ok, result
    results = {
        "concurrent_appends_per_s": 32 * 2000 / singles,
        "batched_appends_per_s": 8 * 500 * 50 / batched,
        "events": events, "checkpoints": result.checkpoints,
        "verify_s": verify_s, "verify_s_per_million": verify_s / events * 1_000_000,
        "bytes_per_event": sum(p.stat().st_size for p in (work / "audit").glob("audit-*.jsonl")) / events,
    }
    shutil.rmtree(work, ignore_errors=True)
    publish("audit", results)


if __name__ == "__main__":
    main()
