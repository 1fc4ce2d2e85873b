"""Beat's work: claim due entries, commit their occurrences (the outbox), then publish.

Exactly once per occurrence: an entry is claimed under a row lock (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so several beats share the work), its occurrences are inserted under a unique
(task, scheduled time) key and the entry moved on in the same transaction, and only then are
messages published. A crash between commit and publish leaves occurrences ``pending``; the
sweep publishes them again, and the worker drops a delivery of a run that already started.

A message can also vanish after it was sent (a broker restarted without persistence): a run
still ``queued`` ``SCHEDULER_REPUBLISH_AFTER`` seconds after it was published (a retry: after
it was due) is published again by the sweep, at most ``SCHEDULER_REPUBLISH_LIMIT`` times,
then marked lost, and alerting hears of it.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, Min, Q, Value, When
from django_celery_beat.models import PeriodicTask

from scheduler import failpoints, misfire, overlap, run_events
from scheduler.jitter import jitter_offset
from scheduler.models import BeatEntry, JobRun, MisfirePolicy, OverlapPolicy, Schedule
from scheduler.publisher import InlinePublisher, Publisher
from scheduler.timing import Timing, UnsupportedSchedule, timing_of

logger = logging.getLogger(__name__)

#: Entries claimed per transaction.
BATCH_SIZE = 1000
#: Missed occurrences recorded per entry per pass, at most (the rest are counted in a note).
MAX_RECORDED_MISSED = 100
#: A pending occurrence older than this was left by a crash (or a slow beat): publish again.
REPUBLISH_AFTER = timedelta(seconds=10)
Status = JobRun.Status


@dataclass
class Outgoing:
    """One message to publish for a committed occurrence."""

    occurrence_id: int
    task_id: uuid.UUID
    task_name: str
    scheduled_for: datetime
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    #: When to publish: the scheduled time plus the schedule's jitter (None: at once).
    due_at: datetime | None = None


@dataclass
class Planned:
    """An occurrence decided on, not yet inserted."""

    task: PeriodicTask
    scheduled_for: datetime
    status: str
    trigger: str = JobRun.Trigger.BEAT
    note: str = ""
    task_id: uuid.UUID = field(default_factory=uuid.uuid4)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


class Dispatcher:
    """Claims due entries, commits their runs and hands the messages to a publisher.

    With a ``lookahead``, entries due that soon are claimed ahead of time and their messages
    held until they are due, so the database work of a busy minute is done before it starts
    and only the sending remains at the due time.
    """

    def __init__(
        self,
        app: Celery,
        clock: Any,
        publisher: Publisher | None = None,
        lookahead: timedelta = timedelta(0),
    ):
        self.app = app
        self.clock = clock
        self.publisher: Publisher = publisher or InlinePublisher(app)
        self.lookahead = lookahead
        self._held: list[tuple[datetime, int, Outgoing]] = []  # a heap by due time
        self._held_ids: set[int] = set()

    # --- the beat pass ----------------------------------------------------------------
    def run_due(self) -> int:
        """Claim and commit everything due now (or within the lookahead) and hand over what
        is due; returns how many messages were handed over."""
        sent = 0
        while True:
            now = self.clock.now()
            sent += self._release(now)
            outgoing, claimed = self._claim_batch(now, now + self.lookahead)
            if outgoing:
                failpoints.reach("after_commit")
            now = self.clock.now()
            due = [m for m in outgoing if m.due_at is None or m.due_at <= now]
            for message in outgoing:
                if message.due_at is not None and message.due_at > now:
                    heapq.heappush(self._held, (message.due_at, message.occurrence_id, message))
                    self._held_ids.add(message.occurrence_id)
            if due:
                sent += self.publish(due)
            if claimed < BATCH_SIZE:
                return sent + self._release(self.clock.now())

    def next_due(self) -> datetime | None:
        """When there is next something to do: a held message to send, or an entry to claim
        (``lookahead`` before it is due)."""
        entry = BeatEntry.objects.filter(due_at__isnull=False).aggregate(m=Min("due_at"))["m"]
        if entry is not None:
            entry -= self.lookahead
        held = self._held[0][0] if self._held else None
        candidates = [t for t in (entry, held) if t is not None]
        return min(candidates) if candidates else None

    def _release(self, now: datetime) -> int:
        due = []
        while self._held and self._held[0][0] <= now:
            message = heapq.heappop(self._held)[2]
            self._held_ids.discard(message.occurrence_id)
            due.append(message)
        return self.publish(due) if due else 0

    def _claim_batch(self, now: datetime, horizon: datetime) -> tuple[list[Outgoing], int]:
        with transaction.atomic():
            query = BeatEntry.objects.filter(due_at__lte=horizon).order_by("due_at")
            if is_postgres():
                query = query.select_for_update(skip_locked=True, of=("self",))
            entries = list(query[:BATCH_SIZE])
            if not entries:
                return [], 0
            tasks = PeriodicTask.objects.select_related(
                "crontab", "interval", "clocked", "managed_schedule"
            ).in_bulk([e.pk for e in entries])
            planned: list[Planned] = []
            fired: list[int] = []
            finished_one_offs: list[int] = []
            for entry in entries:
                task = tasks.get(entry.pk)
                if task is None:  # deleted since; the cascade will remove the entry
                    entry.due_at = None
                    continue
                plans = self._advance(entry, task, now, horizon)
                planned.extend(plans)
                if any(p.status != Status.MISSED for p in plans):
                    fired.append(task.pk)
                    if task.one_off:
                        finished_one_offs.append(task.pk)
            save_entry_fields(entries, ("next_fire_at", "due_at", "last_fire_at", "error"))
            outgoing = self._insert(planned, now)
            if fired:
                PeriodicTask.objects.filter(pk__in=fired).update(
                    last_run_at=now, total_run_count=F("total_run_count") + 1
                )
            if finished_one_offs:  # as the stock scheduler does: a one-off runs once
                PeriodicTask.objects.filter(pk__in=finished_one_offs).update(enabled=False)
            if outgoing:
                failpoints.reach("before_commit")
        return outgoing, len(entries)

    def _advance(
        self, entry: BeatEntry, task: PeriodicTask, now: datetime, horizon: datetime
    ) -> list[Planned]:
        """Decide the occurrences of one due entry (due by ``horizon``) and move it to its
        next fire time."""
        try:
            timing = timing_of(task)
        except UnsupportedSchedule as exc:
            entry.error, entry.due_at = str(exc), None
            return []
        schedule = _schedule_of(task)
        window = timedelta(seconds=_catchup_window(schedule))
        due = _due_times(timing, entry.next_fire_at, horizon, window)
        entry.next_fire_at = timing.next_fire(
            horizon, anchor=due[-1] if due else entry.next_fire_at
        )
        if task.one_off and due:
            entry.next_fire_at = None
        entry.due_at = _due_at(entry.next_fire_at, task, schedule)
        if due:
            entry.last_fire_at = due[-1]
        catch_up = misfire.plan(
            due,
            now,
            policy=schedule.misfire_policy if schedule else MisfirePolicy.RUN_ONCE,
            window=window,
            cap=schedule.max_catchup_runs if schedule else 1,
            # Late is measured from when the occurrence is due: its time plus its jitter.
            grace=misfire.configured_grace() + _jitter_of(schedule),
        )
        missed = catch_up.missed[-MAX_RECORDED_MISSED:]
        plans = [
            Planned(task, t, Status.MISSED, note="not run: beat was down or the schedule paused")
            for t in missed
        ]
        plans += [Planned(task, t, Status.PENDING) for t in catch_up.run]
        return plans

    # --- run now / backfill ---------------------------------------------------------------
    def enqueue(self, schedule: Schedule, times: list[datetime], trigger: str) -> list[JobRun]:
        task = schedule.periodic_task
        with transaction.atomic():
            Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
            plans = [Planned(task, t, Status.PENDING, trigger=trigger) for t in times]
            outgoing = self._insert(plans, self.clock.now())
        self.publish(outgoing)  # asked for now: sent at once, whatever the jitter
        ids = [p.task_id for p in plans]
        return list(JobRun.objects.filter(task_id__in=ids).order_by("scheduled_for"))

    # --- inserting, with the overlap policy ----------------------------------------------
    def _insert(self, plans: list[Planned], now: datetime) -> list[Outgoing]:
        if not plans:
            return []
        _apply_overlap(plans)
        rows = [
            JobRun(
                periodic_task=p.task,
                schedule_id=_schedule_id(p.task),
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
            message.due_at = _due_at(plan.scheduled_for, plan.task, _schedule_of(plan.task))
            outgoing.append(message)
        return outgoing

    # --- publishing -------------------------------------------------------------------------
    def publish(self, outgoing: list[Outgoing]) -> int:
        """Hand ``outgoing`` to the publisher and mark what it has sent so far."""
        if outgoing:
            self.publisher.submit(outgoing)
        self.mark_published()
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
        return len(ids)

    @property
    def busy(self) -> bool:
        """Messages are held or being sent."""
        return bool(self._held) or bool(self.publisher.in_flight())

    def close(self) -> None:
        """Send what is held when it is due (at most ``lookahead`` away), let the publisher
        finish, and mark what it sent. Whatever is left stays pending for the sweep."""
        deadline = time.monotonic() + self.lookahead.total_seconds() + 0.5
        while self._held and time.monotonic() < deadline:
            self._release(self.clock.now())
            time.sleep(0.01)
        self.mark_published()
        self.publisher.close()
        self.mark_published()

    # --- the sweep: crash recovery and buffered runs ----------------------------------------
    def sweep(self, min_age: timedelta = REPUBLISH_AFTER) -> int:
        """Publish occurrences a crash left committed but unpublished, and release buffered
        runs whose schedule has nothing running any more; publish again runs whose message
        was lost."""
        return self._sweep_unpublished(min_age) + self.publish(self._rescue_queued())

    def _rescue_queued(self) -> list[Outgoing]:
        """Runs published long ago and still queued: their message may be lost. Each is
        published again (a worker drops a second delivery) up to the limit, then lost."""
        now = self.clock.now()
        late = now - timedelta(seconds=settings.SCHEDULER_REPUBLISH_AFTER)
        limit = settings.SCHEDULER_REPUBLISH_LIMIT
        with transaction.atomic():
            query = (
                JobRun.objects.filter(status=Status.QUEUED, published_at__lt=late)
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=late))
                .order_by("published_at")
            )
            if is_postgres():
                query = query.select_for_update(skip_locked=True, of=("self",))
            rows = list(query.select_related("periodic_task")[:BATCH_SIZE])
            if not rows:
                return []
            again = [r for r in rows if r.republished < limit and r.periodic_task is not None]
            lost = [r for r in rows if r not in again and r.republished >= limit]
            # A direct call's retry cannot be rebuilt: it waits out the same bound, unsent.
            waiting = [r for r in rows if r not in again and r not in lost]
            JobRun.objects.filter(pk__in=[r.pk for r in again + waiting]).update(
                published_at=now, republished=F("republished") + 1
            )
            JobRun.objects.filter(pk__in=[r.pk for r in lost], status=Status.QUEUED).update(
                status=Status.LOST,
                finished_at=now,
                error_type="NeverStarted",
                error_message=f"no worker started it: still queued after being published "
                f"{limit + 1} times, {settings.SCHEDULER_REPUBLISH_AFTER}s apart (its message "
                "was lost, or no worker consumes its queue)",
            )
        for run in lost:
            logger.error("run %d (%s) never started: marked lost", run.pk, run.task_name)
            run_events.finished(run.pk, Status.LOST, run.schedule_id)  # alerting listens
        if again:
            logger.warning("republishing %d run(s) still queued: message lost?", len(again))
        return [outgoing_for(r.periodic_task, r.pk, r.task_id, r) for r in again]

    def _sweep_unpublished(self, min_age: timedelta) -> int:
        now = self.clock.now()
        with transaction.atomic():
            released = _release_buffered()
            query = JobRun.objects.filter(
                republishable(now), status=Status.PENDING, created_at__lte=now - min_age
            ).order_by("created_at")
            if is_postgres():
                query = query.select_for_update(skip_locked=True, of=("self",))
            # Runs held for their due time or being sent by this beat are not stale.
            mine = self._held_ids | self.publisher.in_flight()
            stale = list(
                query.exclude(pk__in=[*released, *mine]).select_related("periodic_task")[
                    :BATCH_SIZE
                ]
            )
            stale += JobRun.objects.filter(pk__in=released).select_related("periodic_task")
            # Re-stamp, so another beat's sweep does not publish them a second time.
            JobRun.objects.filter(pk__in=[o.pk for o in stale]).update(created_at=now)
        outgoing = [
            outgoing_for(o.periodic_task, o.pk, o.task_id, o)
            for o in stale
            if o.periodic_task is not None
        ]
        if outgoing:
            logger.warning("republishing %d occurrence(s) left unpublished", len(outgoing))
        return self.publish(outgoing)


def republishable(now: datetime) -> Q:
    """Pending rows the sweep can publish: those of a cron entry (their message is rebuilt
    from it; a direct call's retry is the reaper's) and, for a retry, not before its backoff
    has passed (``next_attempt_at``)."""
    return Q(periodic_task__isnull=False) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def save_entry_fields(entries: list[BeatEntry], fields: tuple[str, ...]) -> None:
    """Write ``fields`` of ``entries`` with plain parameterised UPDATEs (pipelined by psycopg):
    Django's bulk_update builds a CASE expression per row, several times slower here."""
    if not entries:
        return
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        [adapt(v) if isinstance(v := getattr(e, name), datetime) else v for name in fields] + [e.pk]
        for e in entries
    ]
    assignments = ", ".join(f"{name} = %s" for name in fields)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE scheduler_beatentry SET {assignments} WHERE periodic_task_id = %s", rows
        )


def outgoing_for(task: PeriodicTask, occurrence_id: int, task_id: uuid.UUID, o: Any) -> Outgoing:
    """The message for an occurrence of ``task``, as the stock scheduler would send it, plus
    the headers the worker uses to find the occurrence."""
    options: dict[str, Any] = {}
    for option in ("queue", "exchange", "routing_key", "priority"):
        value = getattr(task, option)
        if value is not None:
            options[option] = value
    if task.expire_seconds or task.expires:
        options["expires"] = task.expire_seconds or task.expires
    headers = json.loads(task.headers or "{}")
    headers.update(
        periodic_task_name=task.name,
        occurrence_id=occurrence_id,
        scheduled_for=o.scheduled_for.isoformat(),
        trigger=o.trigger,
    )
    return Outgoing(
        occurrence_id=occurrence_id,
        task_id=task_id,
        task_name=task.task,
        scheduled_for=o.scheduled_for,
        args=json.loads(task.args or "[]"),
        kwargs=json.loads(task.kwargs or "{}"),
        options=options,
        headers=headers,
    )


def _due_times(
    timing: Timing, first: datetime | None, now: datetime, window: timedelta
) -> list[datetime]:
    """Fire times from ``first`` up to ``now``; those older than the window are dropped
    unseen, and at most the last thousand are kept."""
    if first is None or first > now:
        return []
    t: datetime | None = first
    if first < now - window:
        t = timing.next_fire(now - window, anchor=first)
    times: deque[datetime] = deque(maxlen=1000)
    while t is not None and t <= now:
        times.append(t)
        t = timing.next_fire(t, anchor=t)
    return list(times)


def _schedule_of(task: PeriodicTask) -> Schedule | None:
    try:
        return task.managed_schedule
    except Schedule.DoesNotExist:
        return None


def _schedule_id(task: PeriodicTask) -> int | None:
    schedule = _schedule_of(task)
    return schedule.pk if schedule else None


def _catchup_window(schedule: Schedule | None) -> int:
    if schedule is not None:
        return schedule.catchup_window
    return settings.SCHEDULER_CATCHUP_WINDOW


def _jitter_of(schedule: Schedule | None) -> timedelta:
    if schedule is not None and schedule.jitter:
        return jitter_offset(schedule.pk, schedule.jitter)
    return timedelta(0)


def _due_at(
    next_fire_at: datetime | None, task: PeriodicTask, schedule: Schedule | None
) -> datetime | None:
    if next_fire_at is None:
        return None
    return next_fire_at + _jitter_of(schedule)


def _apply_overlap(plans: list[Planned]) -> None:
    """Turn pending plans into buffered or skipped ones where the schedule's overlap policy
    says so, counting what is already active in the database."""
    guarded = {
        s.pk: s
        for p in plans
        if (s := _schedule_of(p.task)) is not None and s.overlap_policy != OverlapPolicy.ALLOW
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
        schedule = _schedule_of(plan.task)
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


def _release_buffered() -> list[int]:
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


def enqueue(schedule: Schedule, times: list[datetime], trigger: str) -> list[JobRun]:
    """Queue occurrences of ``schedule`` at ``times`` now (run now, backfill)."""
    from celery import current_app

    from scheduler.clock import get_clock

    return Dispatcher(current_app, get_clock()).enqueue(schedule, times, trigger)
