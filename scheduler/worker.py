"""Worker-side bookkeeping of occurrences, as catalog-task middleware.

- A delivery starts its occurrence only if it is still pending or queued: a second delivery
  of a run that already started (a redelivery, a republish after a beat crash) is dropped.
- The overlap policy is enforced again at start, under a lock on the schedule row, because
  beat's check at emission cannot see a run that a slow queue is about to start.
- When a run ends, the schedule's buffered occurrence (if any) is released and published.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from jobs_catalog.context import JobContext
from jobs_catalog.middleware import Middleware, SkipRun
from scheduler import run_events
from scheduler.models import JobRun, OverlapPolicy, Schedule

logger = logging.getLogger(__name__)
Status = JobRun.Status


class OccurrenceMiddleware(Middleware):
    def before_run(self, task: Any, context: JobContext) -> None:
        if context.run_id is None:
            return  # not sent by the scheduler (a direct call, the CLI)
        with transaction.atomic():  # the decision is committed before the job runs or not
            reason = _start(context.run_id)
        if reason:
            raise SkipRun(reason)

    def after_run(
        self, task: Any, context: JobContext, result: Any, exc: BaseException | None
    ) -> None:
        if context.run_id is None or isinstance(exc, SkipRun):
            return
        status = Status.SUCCEEDED if exc is None else Status.FAILED
        note = "" if exc is None else f"{type(exc).__name__}: {exc}"[:2000]
        ended = JobRun.objects.filter(pk=context.run_id, status=Status.RUNNING).update(
            status=status, finished_at=timezone.now(), note=note
        )
        if ended:  # not when it was cancelled meanwhile
            run_events.finished(context.run_id, status)  # alerting and other listeners
        release_buffered(context.run_id)


def _start(occurrence_id: int) -> str | None:
    """Mark the occurrence running, or say why it must not run."""
    occurrence = (
        JobRun.objects.select_for_update(of=("self",))
        .filter(pk=occurrence_id)
        .select_related("schedule")
        .first()
    )
    if occurrence is None:
        return f"occurrence {occurrence_id} does not exist"
    if occurrence.status not in (Status.PENDING, Status.QUEUED):
        return f"occurrence {occurrence.pk} is already {occurrence.status}: duplicate delivery"
    schedule = occurrence.schedule
    if schedule is not None and schedule.overlap_policy != OverlapPolicy.ALLOW:
        Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
        others = JobRun.objects.filter(schedule=schedule).exclude(pk=occurrence.pk)
        if others.filter(status=Status.RUNNING).exists():
            buffered = others.filter(status=Status.BUFFERED).exists()
            if schedule.overlap_policy == OverlapPolicy.BUFFER_ONE and not buffered:
                occurrence.status, occurrence.note = Status.BUFFERED, "waits for the run going"
            else:
                occurrence.status, occurrence.note = Status.SKIPPED, "skipped: a run was going"
            occurrence.save(update_fields=["status", "note"])
            if occurrence.status == Status.SKIPPED:
                run_events.finished(occurrence)  # alerting and other listeners
            return f"occurrence {occurrence.pk} {occurrence.status} by the overlap policy"
    occurrence.status, occurrence.started_at = Status.RUNNING, timezone.now()
    occurrence.save(update_fields=["status", "started_at"])
    run_events.started(occurrence)  # alerting and other listeners
    return None


def release_buffered(finished_id: int) -> None:
    """Publish the schedule's buffered occurrence now that its predecessor ended."""
    from scheduler.clock import get_clock
    from scheduler.dispatch import Dispatcher, outgoing_for

    with transaction.atomic():
        schedule_id = (
            JobRun.objects.filter(pk=finished_id).values_list("schedule_id", flat=True).first()
        )
        if schedule_id is None:
            return
        waiting = (
            JobRun.objects.select_for_update(of=("self",))
            .filter(schedule_id=schedule_id, status=Status.BUFFERED)
            .select_related("periodic_task")
            .order_by("scheduled_for")
            .first()
        )
        if waiting is None or waiting.periodic_task is None:
            return
        waiting.status, waiting.note = Status.PENDING, ""
        waiting.save(update_fields=["status", "note"])
    message = outgoing_for(waiting.periodic_task, waiting.pk, waiting.task_id, waiting)
    Dispatcher(current_app, get_clock()).publish([message])
