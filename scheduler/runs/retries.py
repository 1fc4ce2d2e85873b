"""Retries: which policy applies, what an attempt's outcome is, the next attempt, and the
rerun of a lost one.

The policy resolves setting by setting in layers (``scheduler.policies.retry``): the run,
then the schedule, then the job's declared ``RetryPolicy`` (the platform default,
``jobs_catalog.retry``, when the job declares none). What is retried is the job's to say
(``RetryPolicy.retry_on``: connection errors, timeouts and ``RetryableError`` by default); a
parameter error or a bug fails at once.

A time limit is not retried: the next attempt would most likely run out of time again,
holding a worker for the whole limit each time. A lost attempt (its worker died) is rerun at
once while attempts remain (:func:`record_lost`, for the worker, plain tasks and the
reaper): the failure was the worker's, not the job's.

Every attempt is its own ``JobRun`` row. The next one is inserted in the transaction that
ends the failed one, then published with a countdown (an outbox: if the worker dies in
between, beat's sweep publishes it once ``next_attempt_at`` has passed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.db import transaction

from jobs_catalog.errors import JobDefinitionError
from jobs_catalog.retry import RetryPolicy
from scheduler import metrics
from scheduler.policies import retry as layering
from scheduler.runs import events as run_events
from scheduler.runs import recording
from scheduler.runs.models import JobRun

Status = JobRun.Status
#: Message headers of the run layer; copied onto every later attempt of the occurrence.
RUN_LAYER_HEADERS = layering.RUN_HEADERS
TIME_LIMITS = (SoftTimeLimitExceeded, TimeLimitExceeded)


class RetryPolicyError(ValueError):
    """The layers do not make a policy: a row or header stored before (or past) validation."""


def resolve_policy(
    job: RetryPolicy,
    schedule: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
) -> RetryPolicy:
    """The policy of one run: each of max_attempts, backoff_base and backoff_cap from the
    first layer that sets it (run, then schedule, then job). ``schedule`` and ``run`` map
    the ``retry_*`` names to a value or None. Raises :class:`RetryPolicyError` naming
    each value taken and where from when they break the rules of ``RetryPolicy``."""
    overrides = layering.above_job(run, schedule)
    if not overrides:
        return job
    try:
        typed = {
            name: int(choice.value) if name == "max_attempts" else float(choice.value)
            for name, choice in overrides.items()
        }
        return replace(job, **typed)
    except (JobDefinitionError, TypeError, ValueError) as exc:
        given = ", ".join(
            f"{layering.layer_name(name)}={choice.value!r} (the {choice.layer}'s)"
            for name, choice in overrides.items()
        )
        reason = str(exc).removeprefix("retry policy: ")
        raise RetryPolicyError(f"invalid retry policy: {given}: {reason}") from exc


def run_layer(header: Callable[[str], Any]) -> dict[str, Any]:
    """The run layer's values present in a message, by header name."""
    return {name: value for name in RUN_LAYER_HEADERS if (value := header(name)) is not None}


def outcome(exc: BaseException, policy: RetryPolicy, attempt: int, max_attempts: int) -> str:
    """The status an attempt that raised ``exc`` ends with."""
    if isinstance(exc, TIME_LIMITS):
        return Status.TIMED_OUT
    if policy.is_retryable(exc) and attempt < max_attempts:
        return Status.RETRYING
    return Status.FAILED


def next_attempt(
    previous: Any,
    *,
    now: datetime,
    delay: float,
    note: str = "",
    task_name: str | None = None,
    scheduled_for: datetime | None = None,
    queue: str | None = None,
    params: dict | None = None,
    args: list | None = None,
) -> JobRun:
    """Insert the attempt after ``previous`` (a ``JobRun`` or a
    ``scheduler.runs.recording.Claimed``), pending, due ``delay`` seconds from ``now``.
    Fields ``previous`` may not carry are given by keyword."""
    run = JobRun(
        periodic_task_id=previous.periodic_task_id,
        schedule_id=previous.schedule_id,
        occurrence_id=previous.first_attempt_id,
        task_name=task_name or previous.task_name,
        scheduled_for=scheduled_for or previous.scheduled_for,
        trigger=JobRun.Trigger.RETRY,
        status=Status.PENDING,
        attempt=previous.attempt + 1,
        max_attempts=max(previous.max_attempts, previous.attempt + 1),
        queue=queue if queue is not None else previous.queue,
        params=params if params is not None else previous.params,
        args=args if args is not None else previous.args,
        created_at=now,
        next_attempt_at=now + timedelta(seconds=delay) if delay else None,
        note=note,
    )
    run.save(force_insert=True)
    return run


class Lost(NamedTuple):
    """What :func:`record_lost` did: whether the attempt was still running (and is now
    lost), and the rerun inserted."""

    ended: bool
    rerun: JobRun | None


def record_lost(row: JobRun, *, now: datetime, reason: str, rerun: bool) -> Lost:
    """Record the attempt ``row`` lost (its worker died while it ran) with ``reason``, and
    with ``rerun`` insert the occurrence's next attempt, pending, due at once; without one
    the occurrence failed, which is announced once committed (alerting listens; a rerun is
    no failure yet). Nothing happens when ``row`` no longer runs (it ended meanwhile).

    The caller decides ``rerun`` (attempts left; beat able to rebuild the message, for the
    reaper; always for a plain task, whose redelivered message runs anyway) and publishes
    the rerun, or runs it."""
    ended = recording.finish(
        row.pk, status=Status.LOST, now=now, error_type="WorkerLost", error_message=reason
    )
    if not ended:
        return Lost(False, None)
    metrics.run_ended(row.task_name, Status.LOST)
    if not rerun:
        transaction.on_commit(partial(run_events.finished, row.pk, Status.LOST, row.schedule_id))
        return Lost(True, None)
    note = f"rerun: attempt {row.attempt} was lost"
    return Lost(True, next_attempt(row, now=now, delay=0, note=note))
