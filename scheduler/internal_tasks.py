"""The platform's own Celery tasks: Celery's built-ins (``celery.backend_cleanup``...) and the
scheduler's (``scheduler.alerts.deliver``). They run the platform, not anyone's work, so they
are never offered as jobs: not to pick for a schedule, nor to filter the run history by."""

from __future__ import annotations

from django.db.models import Q

#: Task name prefixes of the platform's own tasks.
INTERNAL_PREFIXES = ("celery.", "scheduler.")


def is_internal(task_name: str) -> bool:
    return task_name.startswith(INTERNAL_PREFIXES)


def internal(field: str = "name") -> Q:
    """Rows whose ``field`` names an internal task (exclude them with ``.exclude()``)."""
    query = Q()
    for prefix in INTERNAL_PREFIXES:
        query |= Q(**{f"{field}__startswith": prefix})
    return query
