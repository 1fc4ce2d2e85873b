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
import logging
import time
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django_celery_beat.models import PeriodicTask

from scheduler import failpoints, metrics
from scheduler.beat.fire_times import Timing, UnsupportedSchedule, timing_of
from scheduler.beat.models import BeatEntry
from scheduler.db import is_postgres
from scheduler.policies import misfire
from scheduler.runs import events as run_events
from scheduler.runs.messages import Outgoing, message_of
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import (
    Outbox,
    Planned,
    release_buffered,
    republishable,
)
from scheduler.runs.publisher import Publisher
from scheduler.schedules.models import MisfirePolicy
from scheduler.schedules.rules import misfire_grace
from scheduler.schedules.timing import (
    catchup_window,
    due_at,
    jitter_of,
    schedule_of,
)

logger = logging.getLogger(__name__)

#: Entries claimed per transaction.
BATCH_SIZE = 1000
#: Missed occurrences recorded per entry per pass, at most (the rest are counted in a note).
MAX_RECORDED_MISSED = 100
#: A pending occurrence older than this was left by a crash (or a slow beat): publish again.
REPUBLISH_AFTER = timedelta(seconds=10)
Status = JobRun.Status


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
        self.outbox = Outbox(app, clock, publisher)
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
            started = time.perf_counter()
            outgoing, claimed = self._claim_batch(now, now + self.lookahead)
            metrics.BEAT_CLAIM.observe(time.perf_counter() - started)
            if outgoing:
                failpoints.reach("after_commit")
            now = self.clock.now()
            due = [m for m in outgoing if m.due_at is None or m.due_at <= now]
            for message in outgoing:
                if message.due_at is not None and message.due_at > now:
                    heapq.heappush(self._held, (message.due_at, message.attempt_id, message))
                    self._held_ids.add(message.attempt_id)
            if due:
                sent += self._publish_due(due, now)
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
            self._held_ids.discard(message.attempt_id)
            due.append(message)
        return self._publish_due(due, now) if due else 0

    def _publish_due(self, due: list[Outgoing], now: datetime) -> int:
        for message in due:  # how late beat hands each occurrence over
            metrics.DISPATCH_LAG.observe(max((now - message.scheduled_for).total_seconds(), 0))
        return self.outbox.publish(due)

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
            outgoing = self.outbox.commit(planned, now)
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
        schedule = schedule_of(task)
        window = timedelta(seconds=catchup_window(schedule))
        due = _due_times(timing, entry.next_fire_at, horizon, window)
        entry.next_fire_at = timing.next_fire(
            horizon, anchor=due[-1] if due else entry.next_fire_at
        )
        if task.one_off and due:
            entry.next_fire_at = None
        entry.due_at = due_at(entry.next_fire_at, schedule)
        if due:
            entry.last_fire_at = due[-1]
        catch_up = misfire.plan(
            due,
            now,
            policy=schedule.misfire_policy if schedule else MisfirePolicy.RUN_ONCE,
            window=window,
            cap=schedule.max_catchup_runs if schedule else 1,
            # Late is measured from when the occurrence is due: its time plus its jitter.
            grace=misfire_grace() + jitter_of(schedule),
        )
        missed = catch_up.missed[-MAX_RECORDED_MISSED:]
        plans = [
            Planned(task, t, Status.MISSED, note="not run: beat was down or the schedule paused")
            for t in missed
        ]
        plans += [Planned(task, t, Status.PENDING) for t in catch_up.run]
        return plans

    def mark_published(self, timeout: float = 0.0) -> int:
        return self.outbox.mark_published(timeout)

    @property
    def busy(self) -> bool:
        """Messages are held or being sent."""
        return bool(self._held) or bool(self.outbox.in_flight())

    def close(self) -> None:
        """Send what is held when it is due (at most ``lookahead`` away), let the publisher
        finish, and mark what it sent. Whatever is left stays pending for the sweep."""
        deadline = time.monotonic() + self.lookahead.total_seconds() + 0.5
        while self._held and time.monotonic() < deadline:
            self._release(self.clock.now())
            time.sleep(0.01)
        self.outbox.close()

    # --- the sweep: crash recovery and buffered runs ----------------------------------------
    def sweep(self, min_age: timedelta = REPUBLISH_AFTER) -> int:
        """Publish occurrences a crash left committed but unpublished, and release buffered
        runs whose schedule has nothing running any more; publish again runs whose message
        was lost."""
        return self._sweep_unpublished(min_age) + self.outbox.publish(self._rescue_queued())

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
            rows = list(query.select_related("periodic_task", "request")[:BATCH_SIZE])
            if not rows:
                return []
            messages = {r.pk: message_of(r) for r in rows}
            again = [r for r in rows if r.republished < limit and messages[r.pk] is not None]
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
            metrics.run_ended(run.task_name, Status.LOST)
            run_events.finished(run.pk, Status.LOST, run.schedule_id)  # alerting listens
        if again:
            logger.warning("republishing %d run(s) still queued: message lost?", len(again))
        return [messages[r.pk] for r in again]

    def _sweep_unpublished(self, min_age: timedelta) -> int:
        now = self.clock.now()
        with transaction.atomic():
            released = release_buffered()
            query = JobRun.objects.filter(
                republishable(now), status=Status.PENDING, created_at__lte=now - min_age
            ).order_by("created_at")
            if is_postgres():
                query = query.select_for_update(skip_locked=True, of=("self",))
            # Runs held for their due time or being sent by this beat are not stale.
            mine = self._held_ids | self.outbox.in_flight()
            stale = list(
                query.exclude(pk__in=[*released, *mine]).select_related("periodic_task", "request")[
                    :BATCH_SIZE
                ]
            )
            stale += JobRun.objects.filter(pk__in=released).select_related("periodic_task")
            # Re-stamp, so another beat's sweep does not publish them a second time.
            JobRun.objects.filter(pk__in=[o.pk for o in stale]).update(created_at=now)
        outgoing = [message for o in stale if (message := message_of(o)) is not None]
        if outgoing:
            logger.warning("republishing %d occurrence(s) left unpublished", len(outgoing))
        return self.outbox.publish(outgoing)


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
