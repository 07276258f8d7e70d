"""The suite's split (tests/suite.py): integration tests run only with --integration, and a unit test that starts a
process or sleeps past its budget fails, naming what to do."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

INNER = '''
import asyncio
import subprocess
import time

import pytest


def test_in_process():
    assert sum([1, 2]) == 3


def test_starts_a_process():
    subprocess.run(["true"], check=True)


def test_sleeps_a_little():
    time.sleep(0.05)


def test_sleeps_too_long():
    time.sleep(0.15)
    asyncio.run(asyncio.sleep(0.1))


@pytest.fixture(scope="module")
def server():
    return subprocess.Popen(["sleep", "0"])


def test_uses_a_module_scoped_process(server):
    pass


@pytest.mark.integration
def test_integration_may_start_processes_and_wait():
    subprocess.run(["true"], check=True)
    time.sleep(0.3)
'''


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.suite"]\n')
    pytester.makeini("[pytest]\nmarkers =\n  integration: x\n  docker: x\n")
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_without_the_flag_unit_tests_are_guarded_and_integration_tests_skipped(inner: pytest.Pytester) -> None:
    """A process (in the test or in a module-scoped fixture) or more than 0.2 s of sleeping fails a unit test;
    an integration test is skipped, saying how to run it."""
    result = inner.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=3, failed=1, errors=2, skipped=1)  # the sleeper passes, then errors
    out = result.stdout.str()
    assert "a unit test started a process (['true'])" in out  # in the test
    assert "a unit test started a process (['sleep', '0'])" in out  # in its module-scoped fixture
    assert "a unit test slept 0.2" in out and "s in total (budget 0.2 s)" in out
    assert "integration test: `make test` runs it (or pytest --integration)" in out
    result.stdout.fnmatch_lines(["PASSED test_inner.py::test_sleeps_a_little",
                                 "ERROR test_inner.py::test_sleeps_too_long*",
                                 "FAILED test_inner.py::test_starts_a_process*"], consecutive=False)


def test_with_the_flag_integration_tests_run_unguarded(inner: pytest.Pytester) -> None:
    """--integration runs the integration test, which may start processes and wait."""
    result = inner.runpytest_subprocess("--integration", "-k", "integration")
    result.assert_outcomes(passed=1, deselected=5)


ESCAPES = '''
import multiprocessing
import os


def test_os_system():
    assert os.system("true") == 0


def test_posix_spawn():
    os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)


def test_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def test_multiprocessing_spawn():
    process = multiprocessing.get_context("spawn").Process(target=print)
    process.start()
    process.join()
'''


def test_a_process_started_without_subprocess_fails_a_unit_test(inner: pytest.Pytester) -> None:
    """os.system, os.posix_spawn, os.fork and multiprocessing start processes too: each fails a unit test."""
    inner.makepyfile(test_escapes=ESCAPES)
    result = inner.runpytest_subprocess("-rA", "test_escapes.py")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*a unit test started a process (os.system('true'))*",
                                 "*a unit test started a process (os.posix_spawn('/bin/true'))*",
                                 "*a unit test started a process (os.fork())*",
                                 "*a unit test started a process (*fork_exec*"], consecutive=False)
