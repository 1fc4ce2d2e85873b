"""The outbox: a run is committed as a row before its message is published, in one place.

Beat's claim, "run now" and backfill, the worker's retries and buffered runs, the reaper's
reruns and an operator's retry all commit and publish through this module. A message is sent
only after its row is committed; a crash between the two leaves the row ``pending`` and beat's
sweep publishes it again (the worker drops a second delivery of a run that started). Sent
messages are marked ``queued`` with their publish time.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from celery import Celery, current_app
from django.db import transaction
from django.db.models import Case, Count, F, Min, Q, Value, When
from django_celery_beat.models import PeriodicTask

from scheduler import metrics
from scheduler.clock import Clock, get_clock
from scheduler.policies import overlap
from scheduler.runs import events as run_events
from scheduler.runs.messages import Outgoing, outgoing_for
from scheduler.runs.models import JobRun
from scheduler.runs.publisher import InlinePublisher, Publisher
from scheduler.schedules.models import OverlapPolicy, Schedule
from scheduler.schedules.timing import due_at, schedule_id_of, schedule_of

Status = JobRun.Status


@dataclass
class Planned:
    """An occurrence decided on, not yet inserted."""

    task: PeriodicTask
    scheduled_for: datetime
    status: str
    trigger: str = JobRun.Trigger.BEAT
    note: str = ""
    task_id: uuid.UUID = field(default_factory=uuid.uuid4)


class Outbox:
    """Commits runs and publishes their messages through a publisher (in this process by
    default; beat passes its publisher processes)."""

    def __init__(self, app: Celery, clock: Clock, publisher: Publisher | None = None):
        self.app = app
        self.clock = clock
        self.publisher: Publisher = publisher or InlinePublisher(app)

    def enqueue(self, schedule: Schedule, times: list[datetime], trigger: str) -> list[JobRun]:
        """Commit occurrences of ``schedule`` at ``times`` and publish them at once (run now,
        backfill), whatever the jitter."""
        task = schedule.periodic_task
        with transaction.atomic():
            Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
            plans = [Planned(task, t, Status.PENDING, trigger=trigger) for t in times]
            outgoing = self.commit(plans, self.clock.now())
        self.publish(outgoing)
        ids = [p.task_id for p in plans]
        return list(JobRun.objects.filter(task_id__in=ids).order_by("scheduled_for"))

    def commit(self, plans: list[Planned], now: datetime) -> list[Outgoing]:
        """Insert the runs of ``plans`` (in the caller's transaction), the overlap policy
        applied, and return the messages of those to publish."""
        if not plans:
            return []
        _apply_overlap(plans)
        rows = [
            JobRun(
                periodic_task=p.task,
                schedule_id=schedule_id_of(p.task),
                task_name=p.task.task,
                scheduled_for=p.scheduled_for,
                trigger=p.trigger,
                status=p.status,
                note=p.note,
                task_id=p.task_id,
                created_at=now,
            )
            for p in plans
        ]
        # A (task, time) that already has an occurrence is left alone: exactly once.
        JobRun.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        run_events.not_started(rows)  # missed / skipped ones: alerting and other listeners
        pending = {p.task_id: p for p in plans if p.status == Status.PENDING}
        if not pending:
            return []
        inserted = JobRun.objects.filter(task_id__in=list(pending)).values_list("id", "task_id")
        outgoing = []
        for oid, tid in inserted:
            plan = pending[tid]
            message = outgoing_for(plan.task, oid, tid, plan)
            message.due_at = due_at(plan.scheduled_for, schedule_of(plan.task))
            outgoing.append(message)
        count = len(outgoing)
        transaction.on_commit(lambda: metrics.OCCURRENCES_COMMITTED.inc(count))
        return outgoing

    def publish(self, outgoing: list[Outgoing]) -> int:
        """Hand ``outgoing`` to the publisher and mark what it has sent so far."""
        started = time.perf_counter()
        if outgoing:
            self.publisher.submit(outgoing)
        self.mark_published()
        if outgoing:
            metrics.BEAT_PUBLISH.observe(time.perf_counter() - started)
        return len(outgoing)

    def mark_published(self, timeout: float = 0.0) -> int:
        """Mark published what the publisher reports sent (waiting up to ``timeout``)."""
        ids = self.publisher.collect(timeout)
        if not ids:
            return 0
        # One statement; a run the worker already started keeps its status.
        JobRun.objects.filter(pk__in=ids, published_at__isnull=True).update(
            published_at=self.clock.now(),
            status=Case(
                When(status=Status.PENDING, then=Value(Status.QUEUED)), default=F("status")
            ),
        )
        metrics.OCCURRENCES_PUBLISHED.inc(len(ids))
        return len(ids)

    def in_flight(self) -> set[int]:
        """Runs handed to the publisher and not yet reported sent."""
        return self.publisher.in_flight()

    def close(self) -> None:
        """Let the publisher finish and mark what it sent."""
        self.mark_published()
        self.publisher.close()
        self.mark_published()


def publish(
    messages: list[Outgoing], *, app: Celery | None = None, clock: Clock | None = None
) -> int:
    """Publish the messages of runs already committed (a retry, a rerun, a released buffered
    run) in this process, and mark them queued."""
    return Outbox(app or current_app, clock or get_clock()).publish(messages)


def enqueue(
    schedule: Schedule,
    times: list[datetime],
    trigger: str,
    *,
    app: Celery | None = None,
    clock: Clock | None = None,
) -> list[JobRun]:
    """Queue occurrences of ``schedule`` at ``times`` now (run now, backfill)."""
    return Outbox(app or current_app, clock or get_clock()).enqueue(schedule, times, trigger)


def republishable(now: datetime) -> Q:
    """Pending rows the sweep can publish: those of a cron entry or of an application's
    request (their message is rebuilt from it; a direct call's retry is the reaper's) and,
    for a retry, not before its backoff has passed (``next_attempt_at``)."""
    rebuildable = (
        Q(periodic_task__isnull=False)
        | Q(request__isnull=False)
        | Q(occurrence__request__isnull=False)
    )
    return rebuildable & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def _apply_overlap(plans: list[Planned]) -> None:
    """Turn pending plans into buffered or skipped ones where the schedule's overlap policy
    says so, counting what is already active in the database."""
    guarded = {
        s.pk: s
        for p in plans
        if (s := schedule_of(p.task)) is not None and s.overlap_policy != OverlapPolicy.ALLOW
    }
    if not guarded:
        return
    active: dict[int, int] = dict.fromkeys(guarded, 0)
    buffered: dict[int, int] = dict.fromkeys(guarded, 0)
    rows = (
        JobRun.objects.filter(schedule_id__in=list(guarded), status__in=JobRun.ACTIVE)
        .values("schedule_id", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        target = buffered if row["status"] == Status.BUFFERED else active
        target[row["schedule_id"]] += row["n"]
    for plan in sorted(plans, key=lambda p: p.scheduled_for):
        schedule = schedule_of(plan.task)
        if plan.status != Status.PENDING or schedule is None or schedule.pk not in guarded:
            continue
        decision = overlap.decide(
            schedule.overlap_policy, active[schedule.pk], buffered[schedule.pk]
        )
        if decision == overlap.Decision.PUBLISH:
            active[schedule.pk] += 1
        elif decision == overlap.Decision.BUFFER:
            plan.status, plan.note = Status.BUFFERED, "waits for the run still going"
            buffered[schedule.pk] += 1
        else:
            plan.status, plan.note = Status.SKIPPED, "skipped: a run was still going"


def release_buffered() -> list[int]:
    """A buffered occurrence whose schedule has nothing queued or running becomes pending
    (and is published by the sweep). The worker does this at once when a run ends; this
    catches a worker that died before it could."""
    # schedule_id IS NOT NULL: a NULL in a NOT IN list would exclude every row.
    busy = JobRun.objects.filter(
        status__in=[Status.PENDING, Status.QUEUED, Status.RUNNING], schedule_id__isnull=False
    ).values("schedule_id")
    waiting = (
        JobRun.objects.filter(status=Status.BUFFERED)
        .exclude(schedule_id__in=busy)
        .values("schedule_id")
        .annotate(first=Min("id"))
    )
    ids = [row["first"] for row in waiting]
    if ids:
        JobRun.objects.filter(pk__in=ids, status=Status.BUFFERED).update(
            status=Status.PENDING, note=""
        )
    return ids


def release_next_buffered(finished_id: int) -> None:
    """Publish the schedule's buffered occurrence now that its predecessor ended."""
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
    publish([message])
