"""kill -9 at random points under sustained load, N trials (default 100): after every restart the seq is
contiguous, no acknowledged event is lost, a torn last line is detected and cut, and the trail verifies.

An appender child writes events from 8 threads and prints each seq as soon as append() returns (that is the
acknowledgement); the parent SIGKILLs it at a random moment, restarts the trail, and checks. Run:
`.venv/bin/python bench/audit_crash.py [TRIALS]`. Writes bench/results/audit-crash.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import sys, threading
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from onexd.audit.checkpoints import Checkpointer
from onexd.audit.trail import AuditLog
from onexd.keys.keystore import Keystore
from onexd.keys.master import load_master_key
work = Path(sys.argv[1])
ks = Keystore(work / "keys.json", load_master_key(work, {"ONEXD_MASTER_KEY": "c" * 32}))
holder = {}
trail = AuditLog(work / "audit", max_segment_bytes=256 * 1024,
                 on_event=lambda e: holder["cp"].observe(e) if "cp" in holder else None,
                 on_rotate=lambda s: holder["cp"].at_boundary(s) if "cp" in holder else None)
holder["cp"] = Checkpointer(trail, ks.signing_key, every_events=200)
lock = threading.Lock()
def work_():
    while True:
        seq = trail.append("load", "bench", "success", {"pad": "x" * 100})
        with lock:
            sys.stdout.write(f"{seq}\n")
            sys.stdout.flush()
for _ in range(8):
    threading.Thread(target=work_, daemon=True).start()
threading.Event().wait()
"""


def main() -> None:
    from onexd.audit.checkpoints import verify_trail
    from onexd.audit.trail import AuditLog
    from onexd.keys.keystore import Keystore
    from onexd.keys.master import load_master_key

    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="onexd-crash-"))
    acked_max = 0
    torn = 0
    failures: list[str] = []
    for trial in range(trials):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(work), str(ROOT)], stdout=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.2))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        acked = [int(x) for x in out.split()] if out else []
        if acked:
            acked_max = max(acked_max, max(acked))
        segs = sorted((work / "audit").glob("audit-*.jsonl"))
        if segs and segs[-1].read_bytes() and not segs[-1].read_bytes().endswith(b"\n"):
            torn += 1
        trail = AuditLog(work / "audit", max_segment_bytes=256 * 1024)  # recovery: cuts a torn line
        last = trail.last_seq
        trail.close()
        keys = Keystore(work / "keys.json", load_master_key(work, {"ONEXD_MASTER_KEY": "c" * 32}))
        result = verify_trail(work / "audit", keys.public_key)
        if not result.ok:
            failures.append(f"trial {trial}: {result.reason}")
        if acked_max > last:
            failures.append(f"trial {trial}: acknowledged seq {acked_max} lost (trail ends at {last})")
        print(f"\r{trial + 1}/{trials} last seq {last}, torn lines cut {torn}, failures {len(failures)}",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    results = {"trials": trials, "events": last, "torn_last_lines_cut": torn, "failures": failures}
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "audit-crash.json").write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
