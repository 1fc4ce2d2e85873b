"""The run history's search box, kept on indexes: never a ``LIKE '%term%'`` over the history.

- a Celery task id (a UUID): that run, by its unique index;
- a number, ``#123`` or ``123``: the run with that id;
- anything else: runs of the schedules whose name starts with the term, or of the jobs whose
  name starts with it (any case). Names are matched in the small schedule, catalog and
  cron-entry tables; the history is then filtered by schedule id or exact job name, both
  indexed together with the scheduled time.
"""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet
from django_celery_beat.models import PeriodicTask

from jobs_catalog.models import JobDefinition
from scheduler.web.history_filters import schedules_named

#: The most job names one search may match (a prefix matching more is too broad to help).
MAX_JOB_NAMES = 200

HELP_TEXT = "A task id (UUID), a run number (#123), or the start of a schedule's or a job's name."


def job_names(prefix: str) -> list[str]:
    catalog = JobDefinition.objects.filter(name__istartswith=prefix).values_list("name", flat=True)
    tasks = PeriodicTask.objects.filter(task__istartswith=prefix).values_list("task", flat=True)
    return sorted(set(catalog[:MAX_JOB_NAMES]) | set(tasks.distinct()[:MAX_JOB_NAMES]))[
        :MAX_JOB_NAMES
    ]


def search_runs(queryset: QuerySet, term: str) -> QuerySet:
    term = term.strip()
    if not term:
        return queryset
    try:
        return queryset.filter(task_id=uuid.UUID(term))
    except ValueError:
        pass
    number = term.removeprefix("#")
    if number.isdigit():
        return queryset.filter(pk=int(number)) if len(number) < 19 else queryset.none()
    condition = Q(schedule_id__in=schedules_named(term))
    names = job_names(term)
    if names:
        condition |= Q(task_name__in=names)
    return queryset.filter(condition)
