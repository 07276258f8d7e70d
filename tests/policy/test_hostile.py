"""Hostile files are rejected with exit 3, within bounded memory, without crashing the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from onexd.policy.yamlsafe import YamlLimits, load_documents
from tests.conftest import ROOT
from tests.hostile_files import HOSTILE, MANIFEST, hostile_bundle

EXPECTED = {
    "alias_bomb": "limits/too-many-aliases",
    "deep_flow": "limits/too-deep",
    "deep_block": "limits/too-deep",
    "huge_file": "limits/file-too-large",
    "million_keys": "limits/file-too-large",
}


def _run_validate(path: Path) -> tuple[int, list[dict[str, object]], int]:
    """(exit code, JSON problems, peak RSS in KiB) of `onexd policy validate` in a child process."""
    proc = subprocess.Popen([sys.executable, "-m", "onexd.cli.main", "policy", "validate", str(path), "-o", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stdout is not None
    # A watchdog, not a timing assertion (timing is measured in bench/): a hung parser must not hang the suite.
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, json.loads(out), usage.ru_maxrss


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory: pytest.TempPathFactory) -> int:
    root = tmp_path_factory.mktemp("baseline")
    (root / "ok").mkdir()
    (root / "ok" / "bundle.yaml").write_text(MANIFEST.replace("hostile", "ok"))
    code, problems, rss = _run_validate(root)
    assert (code, problems) == (0, [])
    return rss


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_rejected_in_a_child_process(name: str, tmp_path: Path, baseline_rss: int) -> None:
    """The hostile file yields exit 3 with a limit/syntax code, and under 100 MB beyond a trivial run."""
    hostile_bundle(tmp_path, name)
    code, problems, rss = _run_validate(tmp_path)
    assert code == 3, problems
    expected = EXPECTED[name]
    codes = {str(p["code"]) for p in problems}
    assert expected in codes
    assert all(str(p["file"]).endswith(f"{name}/policy.yaml") for p in problems), problems
    assert rss - baseline_rss < 100 * 1024, f"{(rss - baseline_rss) / 1024:.0f} MiB extra"


def test_node_limit_applies_below_the_size_limit() -> None:
    """With a generous size limit, the node counter still stops a file with too many values."""
    text = "".join(f"k{i}: 1\n" for i in range(2000)).encode()
    _, problems = load_documents(text, "f.yaml", YamlLimits(max_file_bytes=10**8, max_nodes=1000))
    assert [p.code for p in problems] == ["limits/too-many-nodes"]


def test_depth_limit_is_ours_not_only_libyamls() -> None:
    """Nesting beyond our own depth limit (well below libyaml's) is refused as too deep."""
    _, problems = load_documents(b"a:" + b" [" * 70 + b"]" * 70 + b"\n", "f.yaml")
    assert [p.code for p in problems] == ["limits/too-deep"]


def test_file_size_is_checked_before_reading(tmp_path: Path) -> None:
    """A file over the limit is refused from its size alone (never read into memory)."""
    from onexd.policy.loader import LoadLimits, parse_bundle

    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.yaml").write_text(MANIFEST)
    with (bundle / "big.yaml").open("wb") as f:
        f.truncate(2 * 1024 * 1024)  # sparse: reading it would show up as 2 MiB of zero bytes
    parsed = parse_bundle(bundle, limits=LoadLimits())
    assert "big.yaml" not in parsed.files
    assert [p.code for p in parsed.problems] == ["limits/file-too-large"]
