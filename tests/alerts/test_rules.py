"""The alert rules as pure decisions (no database, no clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.alerts import rules
from scheduler.alerts.masking import scrub, secret_values
from scheduler.alerts.rules import Action, Policy

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class Open:
    last_notified_at: datetime | None = NOW - timedelta(minutes=5)
    acknowledged_at: datetime | None = None
    last_run_id: int | None = 7


@pytest.mark.parametrize(
    ("policy", "streak", "incident", "expected"),
    [
        (Policy(), 1, None, Action.OPEN),
        (Policy(on_failure=False), 5, None, Action.NOTHING),
        (Policy(failure_threshold=3), 2, None, Action.NOTHING),
        (Policy(failure_threshold=3), 3, None, Action.OPEN),
        (Policy(), 1, Open(), Action.UPDATE),  # open already: count, say nothing
        (Policy(reminder_interval=600), 1, Open(), Action.UPDATE),  # 5 min < 10 min
        (Policy(reminder_interval=240), 1, Open(), Action.REMIND),
        (Policy(reminder_interval=240), 1, Open(acknowledged_at=NOW), Action.UPDATE),
        # It notified nobody (no channel applied): announced now, reminders or not.
        (Policy(), 1, Open(last_notified_at=None), Action.ANNOUNCE),
        (Policy(reminder_interval=240), 1, Open(last_notified_at=None), Action.ANNOUNCE),
        (Policy(), 1, Open(last_notified_at=None, acknowledged_at=NOW), Action.UPDATE),
    ],
)
def test_after_failure(policy, streak, incident, expected):
    assert rules.after_failure(policy, streak, incident, NOW) is expected


def test_after_success_resolves_and_says_so_unless_recovery_is_off():
    assert rules.after_success(Policy(), None).action is Action.NOTHING
    assert rules.after_success(Policy(), Open()) == rules.Resolution(Action.RESOLVE, True)
    assert rules.after_success(Policy(on_recovery=False), Open()).announce is False


def test_after_missed():
    assert rules.after_missed(Policy(), None, NOW) is Action.OPEN
    assert rules.after_missed(Policy(on_missed=False), None, NOW) is Action.NOTHING
    assert rules.after_missed(Policy(), Open(), NOW) is Action.UPDATE
    assert rules.after_missed(Policy(), Open(last_notified_at=None), NOW) is Action.ANNOUNCE


def test_lateness_counts_the_grace_and_the_jitter():
    scheduled = NOW - timedelta(seconds=310)
    assert rules.is_late(scheduled, NOW, grace=300)
    assert not rules.is_late(scheduled, NOW, grace=310)
    assert not rules.is_late(scheduled, NOW, grace=300, offset=timedelta(seconds=20))


def test_too_long():
    started = NOW - timedelta(seconds=61)
    assert rules.is_too_long(Policy(max_runtime=60), started, NOW)
    assert not rules.is_too_long(Policy(max_runtime=0), started, NOW)  # 0: off
    assert not rules.is_too_long(Policy(max_runtime=61), started, NOW)
    assert rules.after_too_long(Policy(), 7, None, NOW) is Action.OPEN
    assert rules.after_too_long(Policy(), 7, Open(last_run_id=7), NOW) is Action.NOTHING
    assert rules.after_too_long(Policy(), 8, Open(last_run_id=7), NOW) is Action.UPDATE
    assert rules.too_long_over(Open(last_run_id=7), 7)
    assert not rules.too_long_over(Open(last_run_id=7), 8)


def test_consecutive_failures_count_occurrences_newest_first():
    rows = [
        (10, "failed"),  # newest occurrence, its last attempt
        (10, "retrying"),  # its first attempt: the same occurrence, not counted again
        (9, "skipped"),  # did not run: passed over
        (8, "timed_out"),
        (7, "running"),  # not done: passed over
        (6, "lost"),
        (5, "succeeded"),  # the streak ends here
        (4, "failed"),
    ]
    assert rules.consecutive_failures(rows) == 3
    assert rules.consecutive_failures([]) == 0
    assert rules.consecutive_failures([(1, "succeeded"), (0, "failed")]) == 0


def test_storm():
    assert not rules.is_storm(20, 20)
    assert rules.is_storm(21, 20)
    assert not rules.is_storm(1000, 0)  # 0: never


def test_masking_secrets_in_text():
    secrets = secret_values(
        {"url": "http://x", "bearer_token": "abc-123-xyz"}, "builtin.http_request"
    )
    assert secrets == ["abc-123-xyz"]
    assert scrub("401 for abc-123-xyz at http://x", secrets) == "401 for ******** at http://x"
    # A job whose code is not installed: every value counts as secret.
    assert sorted(secret_values({"a": "value-1", "b": ["value-2"], "c": 1}, "gone.job")) == [
        "value-1",
        "value-2",
    ]
    assert scrub("a 123 b", ["123"]) == "a 123 b"  # too short to be a secret worth masking
