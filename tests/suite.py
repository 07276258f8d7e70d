"""How the suite is split, and what a unit test may do (a pytest plugin, loaded by tests/conftest.py).

Two kinds of tests share the tree, which mirrors the package:

- **Unit tests** (unmarked): in-process, against the fake runtime and injected clocks. A unit test may not start a
  process and may not sleep more than UNIT_SLEEP_BUDGET_S in total (time.sleep and asyncio.sleep, its own and the
  code's under test, in any thread, during its fixtures too); the guard below fails it otherwise, naming what to
  do. `pytest` and `pytest -m "not docker"` run these, property tests and in-process fuzzers at full budget.
- **Integration tests**, marked `integration` (processes on this host: daemons on the fake runtime over their
  socket, the CLIs as commands, real syslog/webhook receivers, a Kubernetes fake API server, `make install`) or
  `docker` (the real engine). They run with `--integration`, which `make test` and CI pass.
"""

from __future__ import annotations

import _posixsubprocess
import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

UNIT_SLEEP_BUDGET_S = 0.2
INTEGRATION_MARKERS = ("integration", "docker")
# Ways to start a process that do not go through subprocess.Popen: os.spawn*, pty and multiprocessing's fork context
# come down to os.fork or os.forkpty, its spawn and forkserver contexts to _posixsubprocess.fork_exec.
PROCESS_STARTERS: tuple[tuple[Any, str], ...] = (
    (os, "system"), (os, "posix_spawn"), (os, "posix_spawnp"), (os, "fork"), (os, "forkpty"),
    (_posixsubprocess, "fork_exec"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--integration", action="store_true", default=False,
                     help="also run the integration tests (marked integration or docker); `make test` and CI pass it")


def is_integration(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) is not None for name in INTEGRATION_MARKERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--integration"):
        return
    skip = pytest.mark.skip(reason="integration test: `make test` runs it (or pytest --integration)")
    for item in items:
        if is_integration(item):
            item.add_marker(skip)


class UnitTestViolation(AssertionError):
    pass


SLEPT = pytest.StashKey[list[float]]()


@contextlib.contextmanager
def _unit_test_guard(item: pytest.Item) -> Iterator[None]:
    """While a unit test's phase runs (its fixtures included, module-scoped ones too): starting a process raises,
    and the time spent in time.sleep and asyncio.sleep (any thread) is added to the test's account."""
    slept = item.stash.setdefault(SLEPT, [0.0])
    real_sleep, real_async_sleep, real_execute = time.sleep, asyncio.sleep, subprocess.Popen._execute_child  # type: ignore[attr-defined]

    # What a sleep asked for counts, not how long a loaded machine took to return from it; a sleep cancelled
    # early counts only what it waited.
    def sleep(seconds: float) -> None:
        started = time.monotonic()
        try:
            real_sleep(seconds)
        finally:
            slept[0] += min(seconds, time.monotonic() - started)

    async def async_sleep(delay: float, result: Any = None) -> Any:
        started = time.monotonic()
        try:
            return await real_async_sleep(delay, result)
        finally:
            slept[0] += min(delay, time.monotonic() - started)

    def started(what: str) -> UnitTestViolation:
        return UnitTestViolation(f"a unit test started a process ({what}): mark the test "
                                 "`pytest.mark.integration`, or test the function in-process")

    def no_process(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        raise started(repr(self.args))

    def refusing(module: Any, name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise started(f"{module.__name__}.{name}({', '.join(repr(arg) for arg in args[:1])})")
        return refused

    real_starters = [getattr(module, name) for module, name in PROCESS_STARTERS]
    time.sleep, asyncio.sleep = sleep, async_sleep
    subprocess.Popen._execute_child = no_process  # type: ignore[attr-defined]
    for module, name in PROCESS_STARTERS:
        setattr(module, name, refusing(module, name))
    try:
        yield
    finally:
        time.sleep, asyncio.sleep = real_sleep, real_async_sleep
        subprocess.Popen._execute_child = real_execute  # type: ignore[attr-defined]
        for (module, name), real in zip(PROCESS_STARTERS, real_starters, strict=True):
            setattr(module, name, real)


def _guarded_phase(item: pytest.Item) -> Iterator[None]:
    if is_integration(item):
        return (yield)
    with _unit_test_guard(item):
        return (yield)


pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_guarded_phase)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_guarded_phase)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if is_integration(item):
        return (yield)
    with _unit_test_guard(item):
        result = yield
    slept = item.stash[SLEPT][0]
    if slept > UNIT_SLEEP_BUDGET_S:
        raise UnitTestViolation(f"a unit test slept {slept:.2f} s in total (budget {UNIT_SLEEP_BUDGET_S} s): "
                                "inject a clock or an event instead of waiting")
    return result
