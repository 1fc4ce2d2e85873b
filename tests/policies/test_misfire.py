"""scheduler.policies.misfire: which late occurrences run and which are recorded as missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.policies.misfire import DEFAULT_GRACE, LABELS, CatchUp, MisfirePolicy, plan

NOW = datetime(2026, 6, 1, 12, 10, 30, tzinfo=UTC)
WINDOW = timedelta(hours=1)


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 6, 1, 12, minute, second, tzinfo=UTC)


def minutes(*values: int) -> list[datetime]:
    return [at(m) for m in values]


def planned(due: list[datetime], policy: str, *, cap: int = 5, **kwargs) -> CatchUp:
    return plan(due, NOW, policy=policy, window=kwargs.pop("window", WINDOW), cap=cap, **kwargs)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_nothing_due_plans_nothing(policy: MisfirePolicy) -> None:
    assert planned([], policy) == CatchUp()


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_a_lone_occurrence_within_the_grace_runs_under_every_policy(policy: MisfirePolicy) -> None:
    assert planned(minutes(10), policy) == CatchUp(run=minutes(10))


@pytest.mark.parametrize(
    ("policy", "run", "missed"),
    [
        # Beat was down from 12:07: 12:07-12:09 are misfires, 12:10 is merely late.
        (MisfirePolicy.RUN_ONCE, [10], [7, 8, 9]),
        (MisfirePolicy.SKIP, [10], [7, 8, 9]),
        (MisfirePolicy.RUN_ALL, [7, 8, 9, 10], []),
    ],
)
def test_each_policy_after_a_downtime(policy: MisfirePolicy, run: list, missed: list) -> None:
    assert planned(minutes(7, 8, 9, 10), policy) == CatchUp(minutes(*run), minutes(*missed))


@pytest.mark.parametrize(
    ("policy", "run", "missed"),
    [
        # Nothing on time: run once still runs the latest; skip runs none.
        (MisfirePolicy.RUN_ONCE, [9], [7, 8]),
        (MisfirePolicy.SKIP, [], [7, 8, 9]),
        (MisfirePolicy.RUN_ALL, [7, 8, 9], []),
    ],
)
def test_each_policy_when_every_occurrence_is_late(
    policy: MisfirePolicy, run: list, missed: list
) -> None:
    assert planned(minutes(7, 8, 9), policy) == CatchUp(minutes(*run), minutes(*missed))


def test_skip_records_a_lone_late_occurrence_as_missed() -> None:
    assert planned(minutes(5), MisfirePolicy.SKIP) == CatchUp(missed=minutes(5))
    assert planned(minutes(5), MisfirePolicy.RUN_ONCE) == CatchUp(run=minutes(5))


def test_run_all_keeps_the_latest_up_to_the_cap() -> None:
    catch_up = planned(minutes(5, 6, 7, 8, 9, 10), MisfirePolicy.RUN_ALL, cap=3)
    assert catch_up == CatchUp(run=minutes(8, 9, 10), missed=minutes(5, 6, 7))


@pytest.mark.parametrize("cap", [0, -1])
def test_run_all_with_no_cap_left_runs_nothing(cap: int) -> None:
    catch_up = planned(minutes(8, 9, 10), MisfirePolicy.RUN_ALL, cap=cap)
    assert catch_up == CatchUp(run=[], missed=minutes(8, 9, 10))


def test_the_grace_is_inclusive() -> None:
    edge = NOW - DEFAULT_GRACE
    beyond = edge - timedelta(milliseconds=1)
    # A lone occurrence exactly one grace late is on time; a millisecond more is a misfire.
    assert planned([edge], MisfirePolicy.SKIP) == CatchUp(run=[edge])
    assert planned([beyond], MisfirePolicy.SKIP) == CatchUp(missed=[beyond])


def test_the_grace_is_a_parameter() -> None:
    due = [at(10, 0)]  # 30 s late
    assert planned(due, MisfirePolicy.SKIP) == CatchUp(run=due)
    tight = planned(due, MisfirePolicy.SKIP, grace=timedelta(seconds=10))
    assert tight == CatchUp(missed=due)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_occurrences_older_than_the_window_are_neither_run_nor_missed(
    policy: MisfirePolicy,
) -> None:
    window = timedelta(minutes=5)
    old, kept = minutes(1, 2, 3, 4), [NOW - window, at(8), at(10)]
    catch_up = planned(old + kept, policy, window=window)
    # The oldest kept one is exactly a window old: the window is inclusive.
    assert sorted(catch_up.run + catch_up.missed) == kept


def test_everything_beyond_the_window_plans_nothing() -> None:
    due = minutes(1, 2)
    for policy in MisfirePolicy:
        assert planned(due, policy, window=timedelta(minutes=5)) == CatchUp()


def test_every_policy_has_a_label() -> None:
    assert set(LABELS) == set(MisfirePolicy)
