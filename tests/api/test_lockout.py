"""The lockout at the HTTP boundary, without a daemon: a locked-out caller is refused with a 403 that names the
lockout (and its reasons), distinct from an ordinary denial."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from onexd.api.context import ApiContext
from onexd.api.errors import error_response
from onexd.api.lockout import lockout_health, refuse_if_locked, strike
from onexd.errors import LockedOut
from onexd.identity.lockout import LockoutTracker
from onexd.identity.principal import Principal


class _Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _ctx(tracker: LockoutTracker | None) -> ApiContext:
    # Only `lockout` and `audit` are read by the lockout helpers; the services are never touched here.
    none = cast(Any, None)
    return ApiContext(policy=none, jobs=none, limiter=none, reload=none, engine_ok=lambda: True, lockout=tracker)


def test_strikes_lock_and_the_next_submission_is_a_403_locked_out() -> None:
    """Two strikes at threshold 2 lock; refuse_if_locked raises LockedOut, answered 403 `locked-out` with reasons;
    health lists the lock; before the threshold nothing is refused."""
    ctx = _ctx(LockoutTracker(threshold=2, window_s=60, lock_s=600, clock=_Clock()))
    alice = Principal(kind="unix", name="alice")
    asyncio.run(strike(ctx, alice.display, "denied nodes:execute"))
    asyncio.run(refuse_if_locked(ctx, alice))  # one strike: not locked
    asyncio.run(strike(ctx, alice.display, "denied nodes:execute"))
    with pytest.raises(LockedOut, match="locked out") as caught:
        asyncio.run(refuse_if_locked(ctx, alice))
    response = error_response(caught.value, "cid")
    body = json.loads(cast(bytes, response.body))
    assert response.status == 403 and body["error"]["code"] == "locked-out"
    assert body["error"]["reasons"][0]["code"] == "locked-out"
    assert [x["principal"] for x in lockout_health(ctx)["lockouts"]] == [alice.display]


def test_without_a_tracker_nothing_is_counted_or_refused() -> None:
    """Lockout disabled: strikes are ignored, nobody is refused, health lists no lockouts."""
    ctx = _ctx(None)
    bob = Principal(kind="unix", name="bob")
    for _ in range(10):
        asyncio.run(strike(ctx, bob.display, "denied nodes:execute"))
    asyncio.run(refuse_if_locked(ctx, bob))
    assert lockout_health(ctx) == {"lockouts": []}
