"""What people do to schedules (the admin's actions call these; so can scripts): pause,
resume, duplicate. Running one now or backfilling it is :mod:`scheduler.runs.actions`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from scheduler.clock import get_clock
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from scheduler.schedules.rules import field_errors


@transaction.atomic
def pause(schedule: Schedule, user: AbstractBaseUser | None, note: str = "") -> Schedule:
    schedule.paused_at = timezone.now()
    schedule.paused_by = user if user is not None and user.is_authenticated else None
    schedule.pause_note = note
    return save_schedule(schedule, validate=False)


@transaction.atomic
def resume(schedule: Schedule) -> Schedule:
    schedule.paused_at = None
    schedule.paused_by = None
    schedule.pause_note = ""
    return save_schedule(schedule, validate=False)


@transaction.atomic
def duplicate(schedule: Schedule, name: str | None = None) -> Schedule:
    """A disabled copy, so it does not start firing before someone looks at it."""
    require_valid_fields(schedule)
    copy = Schedule.objects.get(pk=schedule.pk)
    copy.pk = copy.periodic_task = None
    copy.name = name or _free_name(f"{schedule.name} (copy)")
    copy.enabled = False
    copy.paused_at = copy.paused_by = None
    copy.pause_note = ""
    # The parameters are copied as stored (secrets included), not typed again.
    return save_schedule(copy, validate=False)


def require_valid_fields(schedule: Schedule) -> None:
    """Refuse to act on a schedule whose stored fields break the rules (a row written before
    they held, or past the form): ``ValueError`` naming each field, nothing changed."""
    errors = field_errors(schedule, get_clock().now())
    if errors:
        problems = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in errors.items())
        raise ValueError(f"{schedule.name} has invalid settings (edit it first): {problems}")


def _free_name(base: str) -> str:
    name, n = base, 2
    while Schedule.objects.filter(name=name).exists():
        name, n = f"{base} {n}", n + 1
    return name
