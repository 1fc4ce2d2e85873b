"""How long a task may run here: what the worker's end write, the reaper and the claim's
outage budget count from."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jobs_catalog.definition import Job


def job_time_limits(job: Job) -> tuple[int, int]:
    """A catalog job's soft and hard time limits, in seconds."""
    return job.effective_time_limits(
        settings.JOBS_DEFAULT_SOFT_TIME_LIMIT, settings.JOBS_DEFAULT_TIME_LIMIT
    )


def hard_time_limit(app: Any, task_name: str) -> float:
    """Seconds after which the worker kills ``task_name``: its own limit, else Celery's
    default, else the longest a job may declare."""
    task = app.tasks.get(task_name)
    limit = getattr(task, "time_limit", None) if task is not None else None
    return float(limit or app.conf.task_time_limit or settings.JOBS_MAX_TIME_LIMIT)
