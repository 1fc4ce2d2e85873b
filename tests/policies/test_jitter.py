"""scheduler.policies.jitter: a fixed offset per key, within the bound."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.policies.jitter import jitter_offset


def test_the_same_key_always_gets_the_same_offset() -> None:
    assert {jitter_offset(42, 30) for _ in range(5)} == {jitter_offset(42, 30)}
    # Keys are compared as text: a schedule id and its string agree.
    assert jitter_offset(42, 30) == jitter_offset("42", 30)


def test_offsets_are_pinned() -> None:
    # Beat and the watchdog of another release must agree on when a schedule is due: a
    # change here moves every jittered schedule.
    assert jitter_offset(1, 30) == timedelta(seconds=13.91)
    assert jitter_offset(42, 3600) == timedelta(seconds=111.738)
    assert jitter_offset("beat", 30) == timedelta(seconds=19.184)


@pytest.mark.parametrize("max_seconds", [1, 7, 30, 3600])
def test_offsets_stay_in_bounds_with_millisecond_grain(max_seconds: int) -> None:
    offsets = [jitter_offset(key, max_seconds) for key in range(2000)]
    assert all(timedelta(0) <= o < timedelta(seconds=max_seconds) for o in offsets)
    assert all(o.microseconds % 1000 == 0 for o in offsets)


def test_offsets_spread_over_the_bound() -> None:
    offsets = [jitter_offset(key, 60) for key in range(1000)]
    # Every tenth of the minute gets some schedules: they do not bunch up.
    assert {int(o.total_seconds() // 6) for o in offsets} == set(range(10))
    assert len(set(offsets)) > 900


@pytest.mark.parametrize("max_seconds", [0, -5])
def test_no_jitter_is_no_offset(max_seconds: int) -> None:
    assert jitter_offset(42, max_seconds) == timedelta(0)
