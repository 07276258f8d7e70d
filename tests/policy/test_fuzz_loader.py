"""Loader fuzzer: mutated copies of the shipped bundles (policies/, examples/policies/) through the real
`onexd policy validate -o json` entry point. Any exit other than 0 (valid) or 3 (invalid), any exception or
traceback, or output that is not the JSON problem list fails.

Budget: FUZZ_EXAMPLES examples in-process (300 by default, derandomized so CI runs the same cases; set
ONEXD_FUZZ_EXAMPLES to run longer and ONEXD_FUZZ_RANDOM=1 to explore new ones) plus a few as child processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from onexd.cli.main import main
from tests.conftest import BASELINE, EXAMPLES, ROOT

FUZZ_EXAMPLES = int(os.environ.get("ONEXD_FUZZ_EXAMPLES", "300"))
DERANDOMIZE = os.environ.get("ONEXD_FUZZ_RANDOM") != "1"
SEEDS = sorted([BASELINE, *(p for p in EXAMPLES.iterdir() if (p / "bundle.yaml").is_file())])
SEED_FILES = {seed.name: sorted(p.relative_to(seed).as_posix() for p in seed.rglob("*") if p.is_file())
              for seed in SEEDS}

# Values that broke (or could break) a loader: huge and non-JSON numbers, tags, anchors, hostile spellings.
HOSTILE_SCALARS = [
    "9" * 4400, "0x" + "f" * 3600, "-" + "1" * 5000, "1" + "_" * 5000 + "x", "0o" + "7" * 5000, "1e400", ".nan",
    "-.inf", "!!python/object:os.system x", "!!binary aGVsbG8=", "!custom x", "&a x", "*nope", "<<: {}",
    "{a: 1, a: 2}", "[" * 200, "yes", "0755", "1:20", "1_000", "~", "''", "\"\\ud800\"", "-eyJaaaa" * 2000,
    "//proc", "/./proc", "/../proc", "4294967296:1", "1e-10", "1024Ti", "SYS_ADMIN", "SCMP_ACT_ALLOW",
    "10.0.0.0/33", "\"\\x00\"", "!!int 0x10", "!!float x", "!!str", "? [a]: b", "|\n  x", ">-\n  y",
]
TEXT_SNIPPETS = [
    "\n---\n", "\n--- !!map\n", "\n%YAML 1.1\n---\n", "\n...\n", "\n&anchor key: *anchor\n", "\n<<: *x\n",
    "\nkey: !!python/name:os.system\n", "\n? - a\n  - b\n: c\n", "\n\t- tab\n", "\ufeff", "\x00", "\r\n",
    "\nspec: {" + "a: [" * 80 + "]" * 80 + "}\n", "\napiVersion: onexd/v1\nkind: Bundle\n",
]


def _mutate_structure(data: Any, draw: st.DrawFn) -> Any:
    """Replace, drop or duplicate one value somewhere in a parsed document."""
    if isinstance(data, dict) and data:
        key = draw(st.sampled_from(sorted(data, key=str)))
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return {k: v for k, v in data.items() if k != key}
        if choice == 1:
            return {**data, key: draw(st.sampled_from([None, [], {}, 0, -1, 2**63, 1.5, True, "x" * 300]))}
        if choice == 2:
            return {**data, draw(st.sampled_from(["extra", "kind", "spec", "$ref", "<<"])): data[key]}
        return {**data, key: _mutate_structure(data[key], draw)}
    if isinstance(data, list) and data:
        i = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            return [*data[:i], *data[i + 1:]]
        return [*data[:i], _mutate_structure(data[i], draw), *data[i:]]
    return draw(st.sampled_from([None, "", 0, -1, 2**62, 0.0, 1e-10, "x", ["a"], {"a": 1}, "SCMP_ACT_ALLOW"]))


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, Callable[[Path], None]]:
    """(seed bundle, file, a function that mutates that file in a copy of the bundle)."""
    seed = draw(st.sampled_from([s.name for s in SEEDS]))
    rel = draw(st.sampled_from(SEED_FILES[seed]))
    kind = draw(st.sampled_from(["flip", "splice", "snippet", "scalar", "structure", "filesystem"]))
    event(kind)
    position = draw(st.floats(0, 1))
    flips = draw(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8))
    snippet = draw(st.sampled_from(TEXT_SNIPPETS))
    scalar = draw(st.sampled_from(HOSTILE_SCALARS))
    fs = draw(st.sampled_from(["loop", "hardlink", "outside", "dangling", "dir-loop", "fifo", "empty", "huge"]))
    structure_draws = st.data()
    data = draw(structure_draws)

    def apply(bundle: Path) -> None:
        path = bundle / rel
        raw = path.read_bytes()
        at = int(position * len(raw))
        if kind == "flip":
            buf = bytearray(raw)
            for where, byte in flips:
                if buf:
                    buf[min(int(where * len(buf)), len(buf) - 1)] = byte
            path.write_bytes(bytes(buf))
        elif kind == "splice":
            path.write_bytes(raw[:at] + raw[at + int(len(raw) * flips[0][0] / 4):])
        elif kind == "snippet":
            path.write_bytes(raw[:at] + snippet.encode("utf-8", errors="surrogatepass") + raw[at:])
        elif kind == "scalar":
            lines = raw.split(b"\n")
            i = min(int(position * len(lines)), len(lines) - 1)
            head, sep, _ = lines[i].partition(b": ")
            lines[i] = head + (sep or b": ") + scalar.encode()
            path.write_bytes(b"\n".join(lines))
        elif kind == "structure" and rel.endswith((".yaml", ".yml", ".json")):
            docs = list(yaml.safe_load_all(raw)) if not rel.endswith(".json") else [json.loads(raw)]
            if docs:
                j = data.draw(st.integers(0, len(docs) - 1))
                docs[j] = _mutate_structure(docs[j], data.draw)
            text = json.dumps(docs[0]) if rel.endswith(".json") else yaml.safe_dump_all(docs, sort_keys=False)
            path.write_text(text)
        elif kind == "filesystem":
            _filesystem(bundle, path, fs)

    return seed, rel, apply


def _filesystem(bundle: Path, path: Path, how: str) -> None:
    extra = bundle / "extra"
    if how == "loop":
        (bundle / "loop-a").symlink_to("loop-b")
        (bundle / "loop-b").symlink_to("loop-a")
    elif how == "hardlink":
        os.link(path, bundle / "hard-link.txt")
    elif how == "outside":
        extra.symlink_to("/etc/hostname")
    elif how == "dangling":
        extra.symlink_to("does-not-exist")
    elif how == "dir-loop":
        (bundle / "sub").mkdir()
        (bundle / "sub" / "up").symlink_to("..")
    elif how == "fifo":
        os.mkfifo(bundle / "pipe.yaml")
    elif how == "empty":
        path.write_bytes(b"")
    else:
        with path.open("ab") as f:
            f.truncate(2 * 1024 * 1024)


def _validate_in_process(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["policy", "validate", str(path), "-o", "json"])
    return code, out.getvalue(), err.getvalue()


def _copy(seed: str, into: Path) -> Path:
    source = next(s for s in SEEDS if s.name == seed)
    target = into / "policies" / seed
    shutil.copytree(source, target, symlinks=True)
    return target


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations())
def test_mutated_bundles_exit_0_or_3_without_a_traceback(case: tuple[str, str, Callable[[Path], None]]) -> None:
    """Every mutation of a shipped bundle validates (0) or is refused with problems (3), in bounded time."""
    seed, _, apply = case
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _copy(seed, Path(tmp))
        apply(bundle)
        start = time.monotonic()
        code, out, err = _validate_in_process(bundle.parent)
        elapsed = time.monotonic() - start
    assert code in (0, 3), (code, err)
    assert "Traceback" not in err
    problems = json.loads(out)
    assert isinstance(problems, list)
    assert (code == 3) == any(p["severity"] == "error" for p in problems), problems
    # The loader's last line of defence turns a crash into a rejection; the fuzzer wants to see none of them.
    assert not any("internal error" in p["message"] for p in problems), problems
    assert elapsed < 5, f"{elapsed:.1f} s"  # a watchdog against super-linear input, not a benchmark


@pytest.mark.integration
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_bundles_in_a_child_process(case: tuple[str, str, Callable[[Path], None]]) -> None:
    """A sample as the real command line: exit 0 or 3, JSON on stdout, nothing on stderr."""
    seed, _, apply = case
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _copy(seed, Path(tmp))
        apply(bundle)
        proc = subprocess.run([sys.executable, "-m", "onexd.cli.main", "policy", "validate", str(bundle.parent),
                               "-o", "json"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode in (0, 3), proc.stderr
    assert "Traceback" not in proc.stderr
    assert isinstance(json.loads(proc.stdout), list)
