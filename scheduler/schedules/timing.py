"""When a schedule's occurrences are due: the schedule behind a cron entry, its jitter offset
and its catch-up window, as beat and the outbox both read them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django_celery_beat.models import PeriodicTask

from scheduler.policies.jitter import jitter_offset
from scheduler.schedules.models import Schedule


def schedule_of(task: PeriodicTask) -> Schedule | None:
    """The schedule that owns ``task``; None for a plain django-celery-beat entry."""
    try:
        return task.managed_schedule
    except Schedule.DoesNotExist:
        return None


def schedule_id_of(task: PeriodicTask) -> int | None:
    schedule = schedule_of(task)
    return schedule.pk if schedule else None


def catchup_window(schedule: Schedule | None) -> int:
    if schedule is not None:
        return schedule.catchup_window
    return settings.SCHEDULER_CATCHUP_WINDOW


def jitter_of(schedule: Schedule | None) -> timedelta:
    if schedule is not None and schedule.jitter:
        return jitter_offset(schedule.pk, schedule.jitter)
    return timedelta(0)


def due_at(next_fire_at: datetime | None, schedule: Schedule | None) -> datetime | None:
    """When an occurrence at ``next_fire_at`` is published: its time plus the jitter."""
    if next_fire_at is None:
        return None
    return next_fire_at + jitter_of(schedule)
