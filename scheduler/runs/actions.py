"""What operators do to a run: retry it now, or cancel it (the run history admin's buttons
call these; so can scripts).

Both decide under a row lock and change nothing when they refuse (:class:`RunActionError`
says why). A retry is a new attempt row, committed before it is published (as beat does), so
a broker that is down leaves it pending for beat's sweep to publish. A cancel is recorded
first (and announced: a run event), then the Celery task id is revoked so a worker drops the
message; for a running run, the workers are told to stop its job (``scheduler.runs.stopping``:
killed, or left to stop by itself if it checks for a cancel). The worker only starts a
pending or queued run, so even a worker that missed the revoke will not run it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from celery import Celery, current_app
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from scheduler.clock import Clock, get_clock
from scheduler.db import is_postgres
from scheduler.policies import cron
from scheduler.runs import events as run_events
from scheduler.runs import retries, stopping
from scheduler.runs.messages import outgoing_for
from scheduler.runs.models import JobRun, attempts_of, status_label
from scheduler.runs.outbox import enqueue, publish
from scheduler.schedules.models import Schedule
from scheduler.schedules.services import require_valid_fields

logger = logging.getLogger(__name__)
Status = JobRun.Status

#: A run can be retried when the last attempt of its occurrence ended in one of these. A
#: success is not retried (run the schedule now instead); an active attempt is still going.
RETRYABLE = (*JobRun.FAILURES, Status.RETRYING, Status.CANCELLED, Status.SKIPPED, Status.MISSED)
#: The most occurrences one backfill may create.
MAX_BACKFILL = 500
#: A run can be cancelled while it is still to run or running.
CANCELLABLE = (Status.PENDING, Status.QUEUED, Status.BUFFERED, Status.RUNNING)


class RunActionError(Exception):
    """The action was refused; nothing was changed. The message is for the operator."""


@dataclass
class ActionResult:
    run: JobRun
    #: Set when the action was recorded but a follow-up step (publish, revoke) failed.
    warning: str = ""


def who(user: AbstractBaseUser | None) -> str:
    """The name an action's note gives the person who asked ("someone" when unknown)."""
    if user is None or not user.is_authenticated:
        return "someone"
    return user.get_username()


def _stamp(clock: Clock) -> str:
    return clock.now().strftime("%Y-%m-%d %H:%M:%S UTC")


def can_retry(run: JobRun) -> bool:
    """Whether the retry button makes sense for this attempt (the service checks again,
    against the whole occurrence, under a lock)."""
    return run.status in RETRYABLE


def can_cancel(run: JobRun) -> bool:
    return run.status in CANCELLABLE


def retry_run(
    run_id: int,
    user: AbstractBaseUser | None = None,
    *,
    clock: Clock | None = None,
    app: Celery | None = None,
) -> ActionResult:
    """Add the next attempt of ``run``'s occurrence and publish it now.

    The new row: attempt = the occurrence's highest attempt + 1, ``occurrence`` = its first
    attempt, trigger ``retry`` and a note naming who asked. It runs the schedule's current
    parameters (the stored snapshot has its secrets masked, so it cannot be replayed).
    """
    clock = clock or get_clock()
    with transaction.atomic():
        run = JobRun.objects.filter(pk=run_id).select_related("periodic_task").first()
        if run is None:
            raise RunActionError(f"Run #{run_id} does not exist (any more).")
        first_id = run.first_attempt_id
        # One action per occurrence at a time: a second click waits here, then sees the
        # attempt the first one added.
        locked = JobRun.objects.filter(pk=first_id)
        if is_postgres():
            locked = locked.select_for_update(of=("self",))
        first = locked.first()
        if first is None:
            raise RunActionError(f"Run #{run_id} does not exist (any more).")
        attempts = list(JobRun.objects.filter(attempts_of(first_id)).order_by("-attempt", "-id"))
        latest = attempts[0]
        active = next((a for a in attempts if a.status in JobRun.ACTIVE), None)
        if active is not None:
            raise RunActionError(
                f"Attempt {active.attempt} of this occurrence is still "
                f"{status_label(active.status).lower()}: there is nothing to retry yet."
            )
        if latest.status == Status.SUCCEEDED:
            raise RunActionError(
                f"Attempt {latest.attempt} of this occurrence succeeded, so there is nothing "
                "to retry. To run the job again, use “Run now” on its schedule."
            )
        if latest.status not in RETRYABLE:
            raise RunActionError(f"A {status_label(latest.status).lower()} run cannot be retried.")
        task = run.periodic_task
        if task is None:
            raise RunActionError(
                "This run's cron entry no longer exists (its schedule was deleted), so there "
                "is nothing to send."
            )
        retry = retries.next_attempt(
            latest,
            now=clock.now(),
            delay=0,
            note=f"Retried by {who(user)} at {_stamp(clock)}.",
            task_name=task.task,
            scheduled_for=first.scheduled_for,
            queue=task.queue or "",
        )
    message = outgoing_for(task, retry.pk, retry.task_id, retry)
    try:
        publish([message], app=app or current_app, clock=clock)
    except Exception as exc:  # the row is committed: beat's sweep publishes it
        logger.exception("retry of run %s: could not publish run %s", run_id, retry.pk)
        return ActionResult(
            retry,
            warning=f"It could not be sent now ({type(exc).__name__}); beat will send it "
            "within seconds.",
        )
    retry.refresh_from_db()
    return ActionResult(retry)


def cancel_run(
    run_id: int,
    user: AbstractBaseUser | None = None,
    *,
    clock: Clock | None = None,
    app: Celery | None = None,
) -> ActionResult:
    """Cancel a run that is still to run (it is dropped) or running: its job is killed, or,
    when it checks for a cancel (``@job(cancellable=True)``), stops by itself between chunks
    (``scheduler.runs.stopping``). The end is announced (a run event) once committed."""
    clock = clock or get_clock()
    with transaction.atomic():
        query = JobRun.objects.filter(pk=run_id)
        if is_postgres():
            query = query.select_for_update(of=("self",))
        run = query.first()
        if run is None:
            raise RunActionError(f"Run #{run_id} does not exist (any more).")
        if run.status not in CANCELLABLE:
            raise RunActionError(
                f"Run #{run.pk} is {status_label(run.status).lower()}: only a pending, queued, "
                "buffered or running run can be cancelled."
            )
        was = run.status
        now = clock.now()
        record = f"Cancelled by {who(user)} at {_stamp(clock)} (was {was})."
        run.status = Status.CANCELLED
        run.finished_at = now
        run.note = f"{run.note}\n{record}" if run.note else record
        fields = ["status", "finished_at", "note"]
        if was == Status.RUNNING and run.started_at is not None:
            run.duration = max((now - run.started_at).total_seconds(), 0.0)
            fields.append("duration")
        run.save(update_fields=fields)
        # Its occurrence ended: announced once committed (alerting and callbacks listen).
        transaction.on_commit(
            partial(run_events.finished, run.pk, Status.CANCELLED, run.schedule_id)
        )
    if was == Status.BUFFERED:
        return ActionResult(run)  # never published: nothing to revoke
    try:
        if was == Status.RUNNING:
            stopping.tell_workers(app or current_app, str(run.task_id))
        else:
            _revoke(app or current_app, str(run.task_id))
    except Exception as exc:
        logger.exception("cancel of run %s: could not revoke task %s", run.pk, run.task_id)
        going = " The job may still be running." if was == Status.RUNNING else ""
        return ActionResult(
            run, warning=f"The workers could not be told ({type(exc).__name__}).{going}"
        )
    return ActionResult(run)


def _revoke(app: Celery, task_id: str) -> Any:
    # Workers remember revoked ids and drop the message when it arrives.
    return app.control.revoke(task_id)


# --- runs of a schedule, outside its cron ------------------------------------------------
def run_now(schedule: Schedule) -> JobRun:
    """Queue one run at once, outside the cron (the overlap policy still applies)."""
    require_valid_fields(schedule)
    [occurrence] = enqueue(schedule, [timezone.now()], JobRun.Trigger.MANUAL)
    return occurrence


class BackfillRangeError(ValueError):
    """A time range a backfill refuses (the message says why); nothing was queued."""


def backfill_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """The times the cron had in (start, end], oldest first: what a backfill would queue.
    Raises :class:`BackfillRangeError` for a range in the future, backwards or holding more
    than MAX_BACKFILL occurrences (the admin checks the range before it acts)."""
    if end <= start:
        raise BackfillRangeError("The end of a backfill must be after its start.")
    if end > timezone.now():
        raise BackfillRangeError("A backfill covers the past only.")
    times = cron.fire_times(schedule.cron, schedule.timezone, start, end, limit=MAX_BACKFILL + 1)
    if len(times) > MAX_BACKFILL:
        raise BackfillRangeError(
            f"That range holds more than {MAX_BACKFILL} occurrences; choose a shorter one."
        )
    return times


def backfill(schedule: Schedule, start: datetime, end: datetime) -> list[JobRun]:
    """Queue the occurrences the cron had in (start, end], oldest first, at most
    MAX_BACKFILL; times that already have an occurrence are left alone."""
    require_valid_fields(schedule)
    return enqueue(schedule, backfill_times(schedule, start, end), JobRun.Trigger.BACKFILL)
