"""The lockout tracker: N strikes within T seconds lock a principal for L seconds; injected clock, no sleeps."""

from __future__ import annotations

import pytest

from onexd.identity.lockout import LockoutTracker


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _tracker(clock: _Clock) -> LockoutTracker:
    return LockoutTracker(threshold=3, window_s=60, lock_s=600, clock=clock)


def test_threshold_strikes_within_the_window_lock_the_principal() -> None:
    """The third strike inside 60 s returns the lock; it names the count and what tipped it."""
    clock = _Clock()
    tracker = _tracker(clock)
    assert tracker.strike("Token:ci-bot", "denied nodes:execute") is None
    clock.now += 10
    assert tracker.strike("Token:ci-bot", "denied nodes:execute") is None
    lock = tracker.strike("Token:ci-bot", "blocked syscall mkdir")
    assert lock is not None and lock.strikes == 3 and lock.until == clock.now + 600
    assert tracker.locked("Token:ci-bot") == lock
    assert "locked out" in lock.reason and "blocked syscall mkdir" in lock.reason
    assert tracker.locked("UnixUser:alice") is None


def test_strikes_outside_the_window_do_not_add_up() -> None:
    """Strikes spread wider than the window never reach the threshold."""
    clock = _Clock()
    tracker = _tracker(clock)
    for _ in range(5):
        assert tracker.strike("p", "denied") is None
        clock.now += 31
    assert tracker.locked("p") is None


def test_lock_expires_on_its_own_and_unlock_lifts_it_early() -> None:
    """After lock_s the principal is free; unlock before that returns the lifted lock, once."""
    clock = _Clock()
    tracker = _tracker(clock)
    for _ in range(3):
        tracker.strike("p", "denied")
    clock.now += 599
    assert tracker.locked("p") is not None and [x.principal for x in tracker.active()] == ["p"]
    clock.now += 1
    assert tracker.locked("p") is None and tracker.active() == []
    for _ in range(3):
        tracker.strike("q", "denied")
    assert tracker.unlock("q") is not None
    assert tracker.unlock("q") is None and tracker.locked("q") is None


def test_strikes_while_locked_do_not_extend_the_lock() -> None:
    """What the lock itself refuses is not a new strike."""
    clock = _Clock()
    tracker = _tracker(clock)
    for _ in range(3):
        tracker.strike("p", "denied")
    until = tracker.locked("p").until  # type: ignore[union-attr]
    clock.now += 100
    assert tracker.strike("p", "denied") is None
    assert tracker.locked("p").until == until  # type: ignore[union-attr]


def test_bad_settings_are_refused() -> None:
    """A zero threshold or window would lock everyone or no one: refused at construction."""
    with pytest.raises(ValueError, match="threshold >= 1"):
        LockoutTracker(threshold=0, window_s=60, lock_s=60)
