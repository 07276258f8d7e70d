"""What the benchmarks share: interleaved timing, the statistics they report, and where their numbers go
(printed, and kept in bench/results/<name>.json)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def publish(name: str, results: dict[str, Any]) -> None:
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(variants: dict[str, Callable[[], object]], rounds: int, samples: dict[str, list[float]],
               before_each: Callable[[], object] | None = None) -> None:
    """`rounds` rounds of every variant once, interleaved so that drift (page cache, engine state, other load) hits
    every variant alike; before_each runs untimed before each sample. Progress goes to stderr."""
    for i in range(rounds):
        for name, fn in variants.items():
            if before_each is not None:
                before_each()
            samples.setdefault(name, []).append(timed(fn))
        print(f"\r{i + 1}/{rounds}", end="", file=sys.stderr, flush=True)


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"n": len(s), "p50_ms": statistics.median(s) * 1000, "p95_ms": s[max(int(len(s) * 0.95) - 1, 0)] * 1000,
            "mean_ms": statistics.fmean(s) * 1000}
