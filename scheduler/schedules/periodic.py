"""Keep a Schedule's django-celery-beat cron entry (PeriodicTask + CrontabSchedule) in step.

Secret parameter values are sealed (``jobs_catalog.secrets``) in the schedule's row and in the
entry's kwargs alike: beat sends them sealed, and the worker opens them.

Everything goes through :func:`save_schedule` and :func:`delete_schedule`, inside one
transaction, so the cron entry never disagrees with the schedule.
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from jobs_catalog.errors import ParameterError, UnknownJobError
from jobs_catalog.registry import registry
from jobs_catalog.secrets import SecretError, seal_params, unseal_params
from scheduler.clock import get_clock
from scheduler.policies import cron
from scheduler.schedules.models import Schedule
from scheduler.schedules.rules import field_errors

#: Header that tells the worker which schedule a message belongs to.
SCHEDULE_HEADER = "schedule_id"


def clean_schedule(schedule: Schedule) -> None:
    """Validate what the database cannot: the schedule's own fields
    (:mod:`scheduler.schedules.rules`) and the parameters against the job's schema. Raises
    ``ValidationError`` keyed by field; changes nothing but normal forms (the cron's, the
    parameters')."""
    errors = field_errors(schedule, get_clock().now())
    if schedule.job_id is not None:
        try:
            job = registry.get(schedule.job.name)
            clear = unseal_params(schedule.params or {}, job.secret_fields)
            schedule.params = seal_params(job.validate(clear), job.secret_fields)
        except UnknownJobError as exc:
            errors.setdefault("job", []).append(f"{exc}: its code is not installed here.")
        except ParameterError as exc:
            for field, messages in exc.by_field().items():
                errors.setdefault("params", []).extend(f"{field}: {m}" for m in messages)
        except SecretError as exc:  # a stored secret no key here opens: type it again
            errors.setdefault("params", []).append(
                f"{exc.field}: {exc.reason}" if exc.field else str(exc)
            )
    if errors:
        raise ValidationError(errors)


def sealed_params(schedule: Schedule) -> dict:
    """The schedule's parameters with its job's secret values sealed: never stored clear.
    A job whose code is not installed here cannot say which are secret: left as they are
    (``manage.py rotate_secrets`` seals them where it is)."""
    params = schedule.params or {}
    job = registry.find(schedule.job.name) if schedule.job_id is not None else None
    return seal_params(params, job.secret_fields) if job is not None else dict(params)


@transaction.atomic
def save_schedule(schedule: Schedule, *, validate: bool = True) -> Schedule:
    """Save ``schedule`` and its cron entry together."""
    if validate:
        clean_schedule(schedule)
    schedule.params = sealed_params(schedule)
    expression = cron.parse(schedule.cron)
    task = schedule.periodic_task or PeriodicTask()
    # The zone is given at construction: django-celery-beat's default scans every zone.
    crontab = (
        task.crontab if task.pk and task.crontab_id else CrontabSchedule(timezone=schedule.timezone)
    )
    crontab.minute, crontab.hour = expression.minute, expression.hour
    crontab.day_of_month, crontab.month_of_year = expression.day_of_month, expression.month
    crontab.day_of_week = expression.day_of_week
    crontab.timezone = schedule.timezone
    crontab.save()
    schedule.save()
    task.name = f"schedule:{schedule.pk}:{schedule.name}"[:200]
    task.task = schedule.job.name
    task.crontab = crontab
    task.interval = task.solar = task.clocked = None
    task.args = "[]"
    task.kwargs = json.dumps(schedule.params)
    task.queue = schedule.queue or None
    task.headers = json.dumps({SCHEDULE_HEADER: schedule.pk})
    task.start_time = schedule.start_at
    task.expires = schedule.end_at
    task.enabled = schedule.is_active
    task.description = schedule.description
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])
    return schedule


@receiver(post_delete, sender=Schedule)
def _delete_cron_entry(sender: type[Schedule], instance: Schedule, **kwargs: object) -> None:
    # Also runs for QuerySet.delete(): the cron entry never outlives its schedule.
    if instance.periodic_task_id is None:
        return
    task = PeriodicTask.objects.filter(pk=instance.periodic_task_id).first()
    if task is not None:
        crontab_id = task.crontab_id
        task.delete()
        if crontab_id and not PeriodicTask.objects.filter(crontab_id=crontab_id).exists():
            CrontabSchedule.objects.filter(pk=crontab_id).delete()
