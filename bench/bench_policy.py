"""Policy benchmarks: validating a 1,000-document bundle, decide() latency on a large snapshot, hostile files.

Run: `make bench-policy` (or `.venv/bin/python bench/bench_policy.py`). Prints a table and writes
bench/results/policy.json. Targets (issue 2): validate < 1 s; decide p99 < 50 us; hostile files < 1 s each.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _results import publish  # noqa: E402

from onexd.engine.decide import decide  # noqa: E402
from onexd.engine.request import JobRequest  # noqa: E402
from onexd.identity.principal import Principal  # noqa: E402
from onexd.policy.pipeline import load_directory  # noqa: E402
from onexd.policy.yamlsafe import load_documents  # noqa: E402
from tests.hostile_files import HOSTILE  # noqa: E402

RES = {"memory": "64Mi", "cpus": 0.5, "pids": 32, "nofile": 64, "timeoutSeconds": 30, "outputBytes": "64Ki"}


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "onexd/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _write_bundle(root: Path, name: str, files: dict[str, list[dict[str, Any]]]) -> None:
    bundle = root / name
    bundle.mkdir(parents=True)
    (bundle / "bundle.yaml").write_text(yaml.safe_dump(_doc("Bundle", name, {"version": "1.0.0"})))
    for fname, docs in files.items():
        (bundle / fname).write_text(yaml.safe_dump_all(docs, sort_keys=False))


def thousand_documents(root: Path) -> None:
    """999 documents + the manifest: profiles, nodes, capabilities, roles and bindings that reference each other."""
    docs: list[dict[str, Any]] = []
    for i in range(200):
        docs.append(_doc("SandboxProfile", f"p{i}", {"image": "onexd/runner-busybox", "user": "1000:1000",
                                                   "tmpfs": [{"path": "/tmp", "size": "4Mi", "mode": "1777"}],
                                                   "resources": RES}))
        docs.append(_doc("Node", f"n{i}", {"version": "1.0.0", "profile": f"p{i}", "command": ["true"],
                                           "inputSchema": {"type": "object"}}))
        docs.append(_doc("Capability", f"c{i}", {"nodes": [f"n{i}"], "profiles": [f"p{i}"]}))
        docs.append(_doc("Role", f"r{i}", {"permissions": ["nodes:execute", "jobs:read"],
                                           "capabilities": [f"c{i}"], "inherits": [f"r{i - 1}"] if i else []}))
        if i < 199:
            docs.append(_doc("RoleBinding", f"b{i}", {"roles": [f"r{i}"],
                                                      "subjects": [{"kind": "UnixUser", "name": str(1000 + i)}]}))
    _write_bundle(root, "big", {"policy.yaml": docs})


def large_snapshot(root: Path) -> None:
    """1,000 roles and 10,000 bindings, each binding two subjects to one role."""
    roles = [_doc("Role", f"r{i}", {"permissions": ["nodes:execute"], "capabilities": ["run-all"]})
             for i in range(1000)]
    bindings = [_doc("RoleBinding", f"b{i}", {"roles": [f"r{i % 1000}"],
                                             "subjects": [{"kind": "UnixUser", "name": str(10_000 + i)},
                                                          {"kind": "UnixGroup", "name": str(50_000 + i % 500)}]})
                for i in range(10_000)]
    base = [_doc("SandboxProfile", "p", {"image": "onexd/runner-busybox", "user": "1000:1000", "resources": RES}),
            _doc("Node", "n", {"version": "1.0.0", "profile": "p", "command": ["true"]}),
            _doc("Capability", "run-all", {"nodes": ["*"], "profiles": ["p"]})]
    _write_bundle(root, "large", {"base.yaml": base, "roles.yaml": roles,
                                  **{f"bindings-{k}.yaml": bindings[k * 2500:(k + 1) * 2500] for k in range(4)}})


def bench_validate() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        thousand_documents(Path(tmp))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            ev = load_directory(Path(tmp))
            times.append(time.perf_counter() - start)
            assert ev.ok, ev.all_problems()[:3]
        docs = sum(len(b.docs) for b in ev.accepted)
    return {"documents": docs, "median_s": statistics.median(times), "max_s": max(times)}


def bench_decide() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        large_snapshot(Path(tmp))
        start = time.perf_counter()
        ev = load_directory(Path(tmp))
        load_s = time.perf_counter() - start
        assert ev.ok, ev.all_problems()[:3]
        assert ev.snapshot is not None
    snapshot = ev.snapshot
    rng = random.Random(7)
    request = JobRequest(node="n")
    principals = [Principal(kind="unix", name=str(u), uid=u, gids=(50_000 + rng.randrange(600), u))
                  for u in (10_000 + rng.randrange(11_000) for _ in range(2000))]
    samples = []
    allowed = 0
    for _ in range(5):
        for p in principals:
            t0 = time.perf_counter_ns()
            d = decide(snapshot, p, request)
            samples.append(time.perf_counter_ns() - t0)
            allowed += d.allowed
    samples.sort()
    return {"roles": len(snapshot.roles), "binding_subjects": len(snapshot.bindings), "load_s": load_s,
            "decisions": len(samples), "allowed": allowed, "p50_us": samples[len(samples) // 2] / 1000,
            "p99_us": samples[int(len(samples) * 0.99)] / 1000}


def bench_hostile() -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in HOSTILE.items():
            path = Path(tmp) / f"{name}.yaml"
            make(path)
            start = time.perf_counter()
            # What the loader does: size check first, then the guarded parse.
            if path.stat().st_size <= 1024 * 1024:
                _, problems = load_documents(path.read_bytes(), str(path))
                assert problems
            out[name + "_ms"] = (time.perf_counter() - start) * 1000
    return out


# Files built to make a backtracking scan quadratic (hardening review, finding 2): each must validate in < 1 s.
SCAN_HOSTILE = {
    "jwt_dashes_txt": ("notes.txt", "-eyJaaaa" * (128 * 1024)),
    "jwt_dots_txt": ("dots.txt", ".eyJ-" * (200 * 1024)),
    "jwt_in_yaml_string": ("big.yaml", "x: '" + "eyJaaaa." * (120 * 1024) + "'\n"),
    "underscore_scalar": ("u.yaml", "x: 1" + "_" * (1000 * 1024) + "x\n"),
}


def bench_hostile_scans() -> dict[str, float]:
    from onexd.policy.pipeline import load_directory

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (file, content) in SCAN_HOSTILE.items():
            bundle = Path(tmp) / name
            bundle.mkdir()
            (bundle / "bundle.yaml").write_text("apiVersion: onexd/v1\nkind: Bundle\nmetadata: {name: b}\n"
                                                "spec: {version: 1.0.0}\n")
            (bundle / file).write_text(content)
            start = time.perf_counter()
            load_directory(bundle)
            out[name + "_ms"] = (time.perf_counter() - start) * 1000
    return out


def main() -> None:
    results = {"validate_1000_docs": bench_validate(), "decide": bench_decide(), "hostile": bench_hostile(),
               "hostile_scans": bench_hostile_scans()}
    publish("policy", results)


if __name__ == "__main__":
    main()
