"""The syscall name table is generated from the kernel headers, never hand-edited: a drift test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from onexd.runtime.syscall_table import AUDIT_ARCH, SYSCALLS

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = Path("/usr/include")


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_syscalls", ROOT / "tools" / "gen_syscalls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_table_matches_the_headers_on_this_machine() -> None:
    """`make generate` would write exactly the committed onexd/runtime/syscall_table.py."""
    generator = _generator()
    if not (INCLUDE / generator.SOURCES["x86_64"][1]).is_file():
        pytest.skip("kernel uapi headers (linux-libc-dev) are not installed here")
    committed = (ROOT / "onexd" / "runtime" / "syscall_table.py").read_text()
    assert generator.render(INCLUDE) == committed, "syscall table drifted: run `make generate`"


def test_table_knows_the_calls_the_acceptance_tests_block() -> None:
    """x86_64 numbers as the kernel logs them: mkdir 83, rmdir 84; the audit arch code maps to the name."""
    assert AUDIT_ARCH["c000003e"] == "x86_64"
    assert SYSCALLS["x86_64"][83] == "mkdir" and SYSCALLS["x86_64"][84] == "rmdir"


def test_parse_header_reads_only_nr_defines() -> None:
    """Guards and unrelated macros are not syscalls."""
    text = "#ifndef _ASM_X\n#define _ASM_X\n#define __NR_read 0\n#define __NR_write 1\n#define NOT_NR 5\n"
    assert _generator().parse_header(text) == {0: "read", 1: "write"}
