"""Every catalog job is a real Celery task under its catalog name, built on one base task.

Later layers (run history, retries) extend :class:`CatalogTask`; job authors never see it.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from jobs_catalog.context import JobContext
from jobs_catalog.definition import Job
from jobs_catalog.registry import Registry


class CatalogTask(Task):
    """The shared base of catalog tasks. ``job`` is set on each task class."""

    job: Job
    # Parameters are validated against the job's schema, not the function signature.
    typing = False
    acks_late = True
    reject_on_worker_lost = True

    def make_context(self) -> JobContext:
        request = self.request
        return JobContext(
            job=self.job.name,
            trigger=request.get("trigger") or "celery",
            attempt=(request.retries or 0) + 1,
            max_attempts=self.job.retry.max_attempts,
        )

    def execute(self, params: dict[str, Any]) -> Any:
        return self.job.call(params, self.make_context())


def _run_job(task: CatalogTask, **params: Any) -> Any:
    return task.execute(params)


def bind_task(job: Job) -> Task:
    soft, hard = job.effective_time_limits(
        settings.JOBS_DEFAULT_SOFT_TIME_LIMIT, settings.JOBS_DEFAULT_TIME_LIMIT
    )
    options: dict[str, Any] = {"soft_time_limit": soft, "time_limit": hard}
    if job.queue:
        options["queue"] = job.queue
    return shared_task(name=job.name, base=CatalogTask, bind=True, job=job, **options)(_run_job)


def bind_tasks(registry: Registry) -> None:
    for job in registry:
        bind_task(job)
