"""The alert rules as pure decisions: given what happened, a schedule's policy and the open
incident (if any), what to do. No database, no clock of their own: callers pass both in.

Vocabulary: an *occurrence* is one scheduled run with all its attempts; it *failed* when its
last attempt failed, timed out or was lost (a ``retrying`` attempt is not final).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

#: Final statuses that count as a failed occurrence (JobRun.FAILURES).
FAILED_STATUSES = frozenset({"failed", "timed_out", "lost"})
SUCCEEDED = "succeeded"
#: Statuses that neither fail nor break a streak: the occurrence did not run, or is not done.
NEUTRAL_STATUSES = frozenset(
    {"skipped", "missed", "cancelled", "retrying", "pending", "queued", "buffered", "running"}
)


@dataclass(frozen=True)
class Policy:
    """A schedule's effective alert rules (its overrides over the ALERTS_* defaults)."""

    on_failure: bool = True
    failure_threshold: int = 1
    on_recovery: bool = True
    on_missed: bool = True
    grace: int = 300  # seconds
    max_runtime: int = 0  # seconds; 0: no too-long alerts
    reminder_interval: int = 0  # seconds; 0: no reminders
    #: Channel ids the schedule picked; empty: the default channels.
    channel_ids: tuple[int, ...] = ()


class IncidentState(Protocol):
    last_notified_at: datetime | None
    acknowledged_at: datetime | None
    last_run_id: int | None


class Action(enum.Enum):
    NOTHING = "nothing"
    OPEN = "open"  # a new incident, announced
    UPDATE = "update"  # the open incident counts one more, silently
    REMIND = "remind"  # ... and announces it again (the reminder interval passed)
    ANNOUNCE = "announce"  # ... and announces it as opened: it notified nobody so far
    RESOLVE = "resolve"  # the problem is gone


@dataclass(frozen=True)
class Resolution:
    action: Action
    #: Whether to say so (the recovery rule).
    announce: bool = False


def reminder_due(policy: Policy, incident: IncidentState, now: datetime) -> bool:
    """An unacknowledged incident is announced again once per reminder interval."""
    if policy.reminder_interval <= 0 or incident.acknowledged_at is not None:
        return False
    last = incident.last_notified_at
    return last is None or now - last >= timedelta(seconds=policy.reminder_interval)


def again(policy: Policy, incident: IncidentState, now: datetime) -> Action:
    """The open incident is seen once more. One that notified nobody (no channel took it when
    it opened) is announced to whoever it applies to now, unless someone acknowledged it."""
    if incident.last_notified_at is None and incident.acknowledged_at is None:
        return Action.ANNOUNCE
    return Action.REMIND if reminder_due(policy, incident, now) else Action.UPDATE


def after_failure(
    policy: Policy, streak: int, incident: IncidentState | None, now: datetime
) -> Action:
    """An occurrence failed; ``streak`` counts the failed occurrences in a row, this one
    included."""
    if incident is not None:
        return again(policy, incident, now)
    if not policy.on_failure or streak < policy.failure_threshold:
        return Action.NOTHING
    return Action.OPEN


def after_success(policy: Policy, incident: IncidentState | None) -> Resolution:
    """An occurrence succeeded: an open failure or missed incident is over."""
    if incident is None:
        return Resolution(Action.NOTHING)
    return Resolution(Action.RESOLVE, announce=policy.on_recovery)


def after_missed(policy: Policy, incident: IncidentState | None, now: datetime) -> Action:
    """An occurrence did not start in time (or was skipped, or missed while beat was down)."""
    if not policy.on_missed:
        return Action.NOTHING
    if incident is not None:
        return again(policy, incident, now)
    return Action.OPEN


def is_late(
    scheduled: datetime, now: datetime, grace: int, offset: timedelta = timedelta(0)
) -> bool:
    """Whether an occurrence due at ``scheduled`` (+ its jitter ``offset``) that has not
    started is past its grace period."""
    return now - (scheduled + offset) > timedelta(seconds=grace)


def is_too_long(policy: Policy, started_at: datetime, now: datetime) -> bool:
    return policy.max_runtime > 0 and now - started_at > timedelta(seconds=policy.max_runtime)


def after_too_long(
    policy: Policy, run_id: int, incident: IncidentState | None, now: datetime
) -> Action:
    """A run is still running past its maximum runtime (seen again on every watchdog pass)."""
    if incident is None:
        return Action.OPEN
    if incident.last_run_id == run_id:
        return Action.NOTHING  # the same run, seen again
    return again(policy, incident, now)


def too_long_over(incident: IncidentState, run_id: int) -> bool:
    """A too-long incident is over when the run it is about ends."""
    return incident.last_run_id == run_id


def consecutive_failures(outcomes: Iterable[tuple[int, str]]) -> int:
    """Failed occurrences in a row, newest first, from ``(occurrence key, status)`` rows
    newest first (the first row seen of an occurrence is its latest attempt). Occurrences
    that did not run or are not done are passed over; a success ends the streak."""
    seen: set[int] = set()
    streak = 0
    for key, status in outcomes:
        if key in seen:
            continue
        seen.add(key)
        if status == SUCCEEDED:
            break
        if status in FAILED_STATUSES:
            streak += 1
    return streak


def is_storm(schedules: int, threshold: int) -> bool:
    """Too many schedules missing at once to be separate problems (beat down, the queue
    stuck): one platform incident says it instead of one per schedule."""
    return threshold > 0 and schedules > threshold
