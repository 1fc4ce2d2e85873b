"""What a schedule's own fields must be, checked wherever a schedule is entered: the model's
``clean()``, the admin form (through it), ``save_schedule`` and the admin's actions.

Pure checks of the fields (the job's parameters are ``scheduler.schedules.periodic``'s): the cron
fires at all, the zone exists, the window ends after it starts, the queue is a queue name,
the retry fields make a policy together with the job's own, and the misfire and jitter
numbers make sense together:

- ``jitter`` is less than the shortest time between two consecutive fire times (or an
  occurrence would be published after the next one is due), at most ``MAX_JITTER``;
- ``catchup_window`` is at least the jitter plus the misfire grace (an occurrence is
  published up to its jitter late, and beat calls it late only past the grace: a shorter
  window drops occurrences unseen), at most ``MAX_CATCHUP_WINDOW``;
- ``max_catchup_runs`` is between 1 and ``MAX_CATCHUP_RUNS``.

The database holds the plain bounds again as check constraints (``Schedule.Meta``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from jobs_catalog.queues import queue_name_problem
from jobs_catalog.registry import registry
from jobs_catalog.retry import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_MAX_ATTEMPTS,
    policy_problems,
)
from scheduler.policies import cron

#: Seconds: the most jitter (spreading a schedule's start over more than a day is no jitter).
MAX_JITTER = 86400
#: Seconds: the longest catch-up window (a month of missed occurrences).
MAX_CATCHUP_WINDOW = 31 * 86400
#: The most missed occurrences one catch-up may run (beat looks at the last thousand).
MAX_CATCHUP_RUNS = 1000


def misfire_grace() -> timedelta:
    """The misfire grace in force: ``settings.SCHEDULER_MISFIRE_GRACE`` seconds."""
    return timedelta(seconds=settings.SCHEDULER_MISFIRE_GRACE)


#: The schedule's retry fields, by the policy setting each overrides.
RETRY_FIELDS = {
    "max_attempts": "retry_max_attempts",
    "backoff_base": "retry_backoff_base",
    "backoff_cap": "retry_backoff_cap",
}

Errors = dict[str, list[str]]


def field_errors(schedule: Any, now: datetime) -> Errors:
    """Every problem of ``schedule``'s own fields, keyed by field; empty when none.
    Normalises the cron expression as a side effect (``@daily`` -> ``0 0 * * *``)."""
    errors: Errors = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    zone_ok = _zone(schedule, add)
    expression = _cron(schedule, schedule.timezone if zone_ok else "UTC", now, add)
    if schedule.start_at and schedule.end_at and schedule.end_at <= schedule.start_at:
        add("end_at", "The end must be after the start.")
    if schedule.queue and (problem := queue_name_problem(schedule.queue)):
        add("queue", problem[0].upper() + problem[1:] + ".")
    _retry(schedule, add)
    jitter_ok = _bounded(schedule.jitter, 0, MAX_JITTER, "jitter", add)
    if jitter_ok and expression is not None and zone_ok and schedule.jitter:
        _jitter_fits(schedule, expression, now, add)
    if _bounded(schedule.catchup_window, 0, MAX_CATCHUP_WINDOW, "catchup_window", add):
        grace = int(misfire_grace().total_seconds())
        least = (schedule.jitter if jitter_ok else 0) + grace
        if schedule.catchup_window < least:
            add(
                "catchup_window",
                f"Must be at least the jitter plus the misfire grace ({least} s): an "
                "occurrence is published up to its jitter after its time, and a shorter "
                "window drops it unseen.",
            )
    _bounded(schedule.max_catchup_runs, 1, MAX_CATCHUP_RUNS, "max_catchup_runs", add)
    return errors


def _cron(schedule: Any, zone: str, now: datetime, add: Any) -> cron.CronExpression | None:
    try:
        expression = cron.parse(schedule.cron)
    except cron.CronError as exc:
        add("cron", str(exc))
        return None
    schedule.cron = expression.expr
    if cron.next_fire(expression, zone, now) is None:
        add(
            "cron",
            f"{expression.expr!r} never fires (not once in the next "
            f"{cron.SEARCH_YEARS} years): no day matches it. February has 28 days, 29 in a "
            "leap year; April, June, September and November have 30.",
        )
        return None
    return expression


def _zone(schedule: Any, add: Any) -> bool:
    try:
        cron.validate_timezone(schedule.timezone)
    except cron.CronError as exc:
        add("timezone", str(exc))
        return False
    return True


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded(value: Any, low: int, high: int, field: str, add: Any) -> bool:
    """Whether ``value`` is a whole number in [low, high]; if not, says so on ``field``."""
    if not _is_whole(value):
        add(field, f"Must be a whole number, not {value!r}.")
        return False
    if not low <= value <= high:
        add(field, f"Must be between {low} and {high}, not {value}.")
        return False
    return True


def _jitter_fits(schedule: Any, expression: cron.CronExpression, now: datetime, add: Any) -> None:
    jitter = timedelta(seconds=schedule.jitter)
    close = cron.close_fire_times(expression, schedule.timezone, now, jitter)
    if close is None:
        return
    zone = cron.validate_timezone(schedule.timezone)
    first, second = (moment.astimezone(zone) for moment in close)
    gap = int((second - first).total_seconds())
    add(
        "jitter",
        f"Must be less than the shortest time between two consecutive fire times (over the "
        f"coming year, daylight-saving changes included): {first:%Y-%m-%d %H:%M} and "
        f"{second:%Y-%m-%d %H:%M} ({schedule.timezone}) are only {gap} s apart.",
    )


def _job_policy(schedule: Any) -> dict[str, Any]:
    """The retry settings of the schedule's job: its code's, else the catalog mirror's."""
    defaults = {
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "backoff_base": DEFAULT_BACKOFF_BASE,
        "backoff_cap": DEFAULT_BACKOFF_CAP,
    }
    if schedule.job_id is None:
        return defaults
    job = registry.find(schedule.job.name)
    if job is not None:
        return {name: getattr(job.retry, name) for name in defaults}
    mirrored = schedule.job.retry_policy or {}
    return {name: mirrored.get(name, value) for name, value in defaults.items()}


def _retry(schedule: Any, add: Any) -> None:
    own = {name: getattr(schedule, field) for name, field in RETRY_FIELDS.items()}
    if all(value is None for value in own.values()):
        return
    job = _job_policy(schedule)
    effective = {name: job[name] if value is None else value for name, value in own.items()}
    for name, problem in policy_problems(**effective).items():
        if own[name] is not None:
            add(RETRY_FIELDS[name], problem[0].upper() + problem[1:] + ".")
        elif name == "backoff_cap" and own["backoff_base"] is not None:
            # The schedule's base is above the job's own cap.
            add(
                "retry_backoff_base",
                f"Must be at most the backoff cap ({job['backoff_cap']:g} s, the job's own); "
                "set a cap too.",
            )
