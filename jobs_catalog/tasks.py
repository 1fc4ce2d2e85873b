"""Every catalog job is a real Celery task under its catalog name, built on one base task.

Each run goes through the middleware chain (``jobs_catalog.middleware``), where the scheduler
records the run history and applies retries; job authors never see this base.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from jobs_catalog.context import JobContext
from jobs_catalog.definition import Job
from jobs_catalog.errors import JobCancelled
from jobs_catalog.middleware import Middleware, RunInfo, configured_middleware, run_with_middleware
from jobs_catalog.registry import Registry


class CatalogTask(Task):
    """The shared base of catalog tasks. ``job`` is set on each task class."""

    job: Job
    # Parameters are validated against the job's schema, not the function signature.
    typing = False
    acks_late = True
    reject_on_worker_lost = True
    # A job that stops because its run was cancelled is no fault: Celery logs it in one
    # line, without a traceback (and error reporters skip it).
    throws = (JobCancelled,)

    def make_context(self) -> JobContext:
        request = self.request
        headers = request.headers or {}
        scheduled_for = _header(request, headers, "scheduled_for")
        # The attempt's own id; messages sent before the attempt_id header named it so.
        run_id = _header(request, headers, "attempt_id")
        if run_id is None:
            run_id = _header(request, headers, "occurrence_id")
        return JobContext(
            job=self.job.name,
            trigger=_header(request, headers, "trigger") or "direct",
            attempt=(request.retries or 0) + 1,
            max_attempts=self.job.retry.max_attempts,
            run_id=int(run_id) if run_id is not None else None,
            scheduled_for=datetime.fromisoformat(scheduled_for) if scheduled_for else None,
            headers=dict(headers),
        )

    def middleware(self) -> tuple[Middleware, ...]:
        return configured_middleware()

    def execute(self, params: dict[str, Any]) -> Any:
        request = self.request
        delivery = request.delivery_info or {}
        run = RunInfo(
            job=self.job,
            params=params,
            context=self.make_context(),
            task_id=request.id,
            hostname=request.hostname or "",
            # Celery routes by queue name: the routing key is the queue it came from.
            queue=delivery.get("routing_key") or "",
            redelivered=bool(delivery.get("redelivered")),
            request=request,
        )
        return run_with_middleware(run, self.middleware())


def _header(request: Any, headers: dict[str, Any], name: str) -> Any:
    # Celery (protocol 2) exposes custom headers both as request attributes and in headers.
    value = request.get(name)
    return value if value is not None else headers.get(name)


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
