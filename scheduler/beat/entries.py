"""Keep BeatEntry (the indexed next-fire times) in step with django-celery-beat's rows.

Only rows that changed are recomputed: a task whose timing digest is unchanged keeps its
next fire time, so an edit of its arguments does not move or drop an occurrence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db import transaction
from django_celery_beat.models import PeriodicTask

from scheduler.beat.dispatch import save_entry_fields
from scheduler.beat.fire_times import UnsupportedSchedule, timing_of
from scheduler.beat.models import BeatEntry
from scheduler.schedules.timing import due_at, schedule_of

logger = logging.getLogger(__name__)

CHUNK = 2000


def reconcile(now: datetime, task_ids: Iterable[int] | None = None) -> int:
    """Create, update or delete entries for ``task_ids`` (all tasks when None). Returns how
    many entries changed."""
    changed = 0
    if task_ids is None:
        for chunk in _chunks(PeriodicTask.objects.order_by("pk").values_list("pk", flat=True)):
            changed += _reconcile_chunk(now, chunk)
        # Entries whose task is gone (deleted with raw SQL, say).
        changed += BeatEntry.objects.exclude(periodic_task__in=PeriodicTask.objects.all()).delete()[
            0
        ]
        return changed
    ids = list(set(task_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        changed += _reconcile_chunk(now, chunk)
        alive = set(PeriodicTask.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        gone = [pk for pk in chunk if pk not in alive]
        if gone:
            changed += BeatEntry.objects.filter(pk__in=gone).delete()[0]
    return changed


def _reconcile_chunk(now: datetime, ids: list[int]) -> int:
    tasks = PeriodicTask.objects.select_related(
        "crontab", "interval", "clocked", "solar", "managed_schedule"
    ).filter(pk__in=ids)
    with transaction.atomic():
        entries = BeatEntry.objects.select_for_update().in_bulk(ids)
        to_create, to_update = [], []
        for task in tasks:
            entry = entries.get(task.pk)
            fresh = entry is None
            if fresh:
                entry = BeatEntry(periodic_task=task)
            if _refresh(entry, task, now, fresh):
                (to_create if fresh else to_update).append(entry)
        BeatEntry.objects.bulk_create(to_create, ignore_conflicts=True)
        save_entry_fields(to_update, ("next_fire_at", "due_at", "signature", "enabled", "error"))
    return len(to_create) + len(to_update)


def _refresh(entry: BeatEntry, task: PeriodicTask, now: datetime, fresh: bool) -> bool:
    """Bring ``entry`` up to date with ``task``; False when nothing changed."""
    schedule = schedule_of(task)
    try:
        timing = timing_of(task)
    except UnsupportedSchedule as exc:
        if entry.error != str(exc):
            logger.error("periodic task %r is not scheduled: %s", task.name, exc)
        changed = entry.error != str(exc) or entry.due_at is not None or fresh
        entry.error, entry.due_at, entry.signature = str(exc), None, ""
        entry.enabled = task.enabled
        return changed
    jitter = schedule.jitter if schedule is not None else 0
    signature = f"{timing.signature}:{jitter}"[:64]
    if not fresh and entry.signature == signature and entry.enabled == task.enabled:
        return False
    if fresh or entry.signature != signature or entry.next_fire_at is None:
        # New, or its timing changed: start from now (a changed cron is not back-filled).
        entry.next_fire_at = timing.first_fire(now) if fresh else timing.next_fire(now)
    # Re-enabled with the same timing: keep next_fire_at, so the misfire policy decides
    # what happens to the occurrences that came due while it was paused.
    entry.signature, entry.enabled, entry.error = signature, task.enabled, ""
    entry.due_at = due_at(entry.next_fire_at, schedule) if task.enabled else None
    return True


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    chunk: list[int] = []
    for pk in ids.iterator(chunk_size=CHUNK) if hasattr(ids, "iterator") else ids:
        chunk.append(pk)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
