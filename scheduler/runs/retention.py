"""Pruning the run history: delete runs older than an age, but never

- a run still to run or running (pending, queued, buffered, running);
- one of the last ``keep_last`` runs of its schedule (so a weekly job keeps its story);
- an unresolved failure: an occurrence whose last attempt failed, timed out, was lost or is
  waiting to retry, with no later successful run of the same schedule.

The unit is the occurrence: its attempts go together (a retry points at the first attempt),
and an occurrence is kept whole when any of its attempts must be kept. Runs without a
schedule (plain cron entries whose schedule was deleted, command-line runs) are pruned by
age alone.

It works in batches of first attempts, oldest first by the ``created_at`` index, each batch
in its own short transaction (rows a worker holds are skipped on PostgreSQL, not waited
for), deleting by primary key in ascending order. Per schedule it reads two values once, each
by a walk of the (schedule, -scheduled_for, -id) index: the position of its N-th newest run
and the time of its last success. Nothing reads the whole table.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from scheduler.db import is_postgres
from scheduler.runs.models import JobRun, RunRequest
from scheduler.schedules.models import Schedule

logger = logging.getLogger(__name__)
Status = JobRun.Status

#: First attempts examined (and, with their retries, deleted) per transaction.
DEFAULT_BATCH_SIZE = 5000
MAX_BATCH_SIZE = 10_000
#: Schedules whose boundaries are read per query.
SCHEDULE_CHUNK = 500
#: An occurrence that ended this way stays until a later run of its schedule succeeds.
UNRESOLVED = (*JobRun.FAILURES, Status.RETRYING)


@dataclass
class PruneReport:
    cutoff: datetime
    keep_last: int
    deleted: int = 0
    batches: int = 0
    #: Occurrences older than the cutoff that were kept, by reason.
    kept: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: True when it stopped at ``max_batches`` or the deadline with more to look at.
    interrupted: bool = False

    def as_dict(self) -> dict:
        return {
            "deleted": self.deleted,
            "batches": self.batches,
            "cutoff": self.cutoff.isoformat(),
            "keep_last": self.keep_last,
            "kept": dict(sorted(self.kept.items())),
            "interrupted": self.interrupted,
        }


@dataclass
class _ScheduleMarks:
    #: (scheduled_for, id) of the schedule's ``keep_last``-th newest run: it and every newer
    #: run are kept. None when keep_last is 0.
    nth_newest: tuple[datetime, int] | None
    last_success_at: datetime | None
    #: The schedule has no more than keep_last runs: all are kept.
    keep_all: bool = False


@dataclass
class _Run:
    id: int
    schedule_id: int | None
    scheduled_for: datetime
    created_at: datetime
    status: str
    attempt: int


RUN_FIELDS = ("id", "schedule_id", "scheduled_for", "created_at", "status", "attempt")


def prune_history(
    *,
    older_than: timedelta,
    keep_last: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
    max_batches: int | None = None,
    deadline: float | None = None,
) -> PruneReport:
    """Delete what the rules above allow; returns what it did. ``deadline`` is a
    ``time.monotonic()`` value after which no new batch starts."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if keep_last < 0:
        raise ValueError("keep_last cannot be negative")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    report = PruneReport(cutoff=(now or timezone.now()) - older_than, keep_last=keep_last)
    marks: dict[int, _ScheduleMarks] = {}
    after: tuple[datetime, int] | None = None
    while True:
        if (max_batches is not None and report.batches >= max_batches) or (
            deadline is not None and time.monotonic() >= deadline
        ):
            report.interrupted = True
            break
        with transaction.atomic():
            firsts = _next_firsts(report.cutoff, after, batch_size)
            if not firsts:
                break
            after = (firsts[-1].created_at, firsts[-1].id)
            retries = _retries_of([run.id for run in firsts])
            new = {run.schedule_id for run in firsts if run.schedule_id is not None} - set(marks)
            marks.update(_schedule_marks(new, keep_last))
            doomed: list[int] = []
            for first in firsts:
                group = [first, *retries.get(first.id, ())]
                reason = _reason_to_keep(group, report.cutoff, keep_last, marks)
                if reason:
                    report.kept[reason] += 1
                else:
                    doomed.extend(run.id for run in group)
            report.deleted += _delete(sorted(doomed))
        report.batches += 1
        if len(firsts) < batch_size:
            break
    logger.info(
        "run history pruned: %d deleted before %s in %d batch(es)",
        report.deleted,
        report.cutoff.isoformat(),
        report.batches,
    )
    return report


def _next_firsts(cutoff: datetime, after: tuple[datetime, int] | None, limit: int) -> list[_Run]:
    """The next first attempts recorded before ``cutoff``, in (created_at, id) order."""
    query = JobRun.objects.filter(occurrence__isnull=True, created_at__lt=cutoff)
    if after is not None:
        query = query.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
    query = query.order_by("created_at", "id")
    if is_postgres():
        # A row a worker is updating right now is left for the next run.
        query = query.select_for_update(skip_locked=True, of=("self",))
    return [_Run(*row) for row in query.values_list(*RUN_FIELDS)[:limit]]


def _retries_of(first_ids: list[int]) -> dict[int, list[_Run]]:
    found: dict[int, list[_Run]] = defaultdict(list)
    rows = JobRun.objects.filter(occurrence_id__in=first_ids).values_list(
        "occurrence_id", *RUN_FIELDS
    )
    for occurrence_id, *row in rows:
        found[occurrence_id].append(_Run(*row))
    return found


def _schedule_marks(schedule_ids: Iterable[int], keep_last: int) -> dict[int, _ScheduleMarks]:
    ids = sorted(schedule_ids)
    out: dict[int, _ScheduleMarks] = {}
    newest = JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-scheduled_for", "-id")
    success = newest.filter(status=Status.SUCCEEDED)
    for start in range(0, len(ids), SCHEDULE_CHUNK):
        query = Schedule.objects.filter(pk__in=ids[start : start + SCHEDULE_CHUNK]).annotate(
            success_at=Subquery(success.values("scheduled_for")[:1])
        )
        if keep_last:
            nth = slice(keep_last - 1, keep_last)
            query = query.annotate(
                nth_at=Subquery(newest.values("scheduled_for")[nth]),
                nth_id=Subquery(newest.values("id")[nth]),
            )
            rows = query.values_list("pk", "success_at", "nth_at", "nth_id")
        else:
            rows = ((pk, at, None, None) for pk, at in query.values_list("pk", "success_at"))
        for pk, success_at, nth_at, nth_id in rows:
            boundary = (nth_at, nth_id) if nth_id is not None else None
            out[pk] = _ScheduleMarks(
                boundary, success_at, keep_all=bool(keep_last) and not boundary
            )
    return out


def _reason_to_keep(
    group: list[_Run], cutoff: datetime, keep_last: int, marks: dict[int, _ScheduleMarks]
) -> str | None:
    if any(run.status in JobRun.ACTIVE for run in group):
        return "active"
    if any(run.created_at >= cutoff for run in group):
        return "recent attempt"
    schedule_id = group[0].schedule_id
    mark = marks.get(schedule_id) if schedule_id is not None else None
    if mark is None:
        return None  # no schedule (or it was deleted meanwhile): age alone decides
    if mark.keep_all or (
        mark.nth_newest is not None
        and any((run.scheduled_for, run.id) >= mark.nth_newest for run in group)
    ):
        return "last runs of the schedule"
    last = max(group, key=lambda run: (run.attempt, run.id))
    if last.status in UNRESOLVED and (
        mark.last_success_at is None or mark.last_success_at <= group[0].scheduled_for
    ):
        return "unresolved failure"
    return None


#: Models whose rows belong to one run and go with it (``on_delete=CASCADE`` on a key named
#: ``run``): deleted first by the same ids, one statement each.
DELETED_WITH_RUNS = (RunRequest,)


def _delete(ids: list[int]) -> int:
    """Delete these runs (whole occurrences) by primary key, in ascending order."""
    if not ids:
        return 0
    if _only_self_references():
        tables = [m._meta.db_table for m in DELETED_WITH_RUNS] + [JobRun._meta.db_table]
        with connection.cursor() as cursor:
            for table in tables:
                key = "id" if table == JobRun._meta.db_table else "run_id"
                name = connection.ops.quote_name(table)
                if is_postgres():
                    cursor.execute(f"DELETE FROM {name} WHERE {key} = ANY(%s)", [ids])
                else:
                    marks = ", ".join(["%s"] * len(ids))
                    cursor.execute(f"DELETE FROM {name} WHERE {key} IN ({marks})", ids)
            return cursor.rowcount
    # Another model points at runs: let Django's collector apply its on_delete rules.
    return JobRun.objects.filter(pk__in=ids).delete()[1].get(JobRun._meta.label, 0)


def _only_self_references() -> bool:
    """Whether the only foreign keys to runs are a retry's ``occurrence`` (whose rows are
    deleted together) and those of ``DELETED_WITH_RUNS``, so plain DELETEs are safe."""
    return all(
        rel.related_model is JobRun or rel.related_model in DELETED_WITH_RUNS
        for rel in JobRun._meta.related_objects
    )
