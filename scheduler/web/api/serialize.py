"""Runs and schedules as the API shows them. Secret parameter values are masked (the history
keeps them masked already; a schedule's are masked here); the job's own output (result,
error, logs) was masked by the worker before it was stored."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from scheduler.runs.models import JobRun, attempts_of
from scheduler.schedules.models import Schedule
from scheduler.web.display import masked_params

Status = JobRun.Status
#: Fields a listed run needs (the heavy text is loaded for one run only).
LIST_DEFERRED = ("logs", "traceback", "args")


def percent(progress: dict[str, Any]) -> float | None:
    total = progress.get("total")
    if not total:
        return None
    return round(max(0.0, min(100.0, 100.0 * float(progress.get("done") or 0) / total)), 1)


def progress_out(progress: Any) -> dict[str, Any] | None:
    if not isinstance(progress, dict):
        return None
    return {
        "done": progress.get("done") or 0,
        "total": progress.get("total"),
        "percent": percent(progress),
        "message": progress.get("message") or "",
        "at": progress.get("at"),
    }


def run_url(request: HttpRequest, run_id: int) -> str:
    return request.build_absolute_uri(reverse("api:read_run", args=[run_id]))


def run_out(
    request: HttpRequest,
    row: JobRun,
    *,
    attempts: list[JobRun] | None = None,
    logs: bool = False,
) -> dict[str, Any]:
    """``row`` (an attempt) as the run it belongs to: ``id`` is the first attempt's."""
    first = row.first_attempt_id
    schedule = (
        {"id": row.schedule_id, "name": row.schedule.name}
        if row.schedule_id is not None and row.schedule is not None
        else None
    )
    error = None
    if row.error_type or row.error_message:
        error = {"type": row.error_type, "message": row.error_message}
        if logs:
            error["traceback"] = row.traceback
    return {
        "id": first,
        "attempt_id": row.pk,
        "job": row.task_name,
        "status": row.status,
        "finished": row.status in JobRun.FINISHED and row.status != Status.RETRYING,
        "trigger": row.trigger,
        "schedule": schedule,
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "scheduled_for": row.scheduled_for,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "duration": row.duration,
        "queue": row.queue,
        "worker": row.worker_host,
        "params": row.params if isinstance(row.params, dict | list) else {},
        "progress": progress_out(row.progress),
        "result": row.result or None,
        "error": error,
        "note": row.note,
        "attempts": (
            [
                {
                    "id": a.pk,
                    "attempt": a.attempt,
                    "status": a.status,
                    "started_at": a.started_at,
                    "finished_at": a.finished_at,
                    "error_type": a.error_type,
                }
                for a in attempts
            ]
            if attempts is not None
            else None
        ),
        "logs": row.logs if logs else None,
        "links": {
            "self": run_url(request, first),
            "cancel": run_url(request, first) + "/cancel",
            "admin": request.build_absolute_uri(
                reverse("admin:scheduler_jobrun_change", args=[row.pk])
            ),
        },
    }


def occurrence(run_id: int) -> tuple[JobRun, list[JobRun]] | None:
    """The latest attempt of the run that attempt ``run_id`` belongs to, and all its
    attempts (oldest first); None when there is no such run."""
    row = JobRun.objects.filter(pk=run_id).only("id", "occurrence_id").first()
    if row is None:
        return None
    attempts = list(
        JobRun.objects.filter(attempts_of(row.first_attempt_id))
        .select_related("schedule")
        .order_by("attempt", "id")
    )
    return attempts[-1], attempts


def schedule_out(schedule: Schedule) -> dict[str, Any]:
    paused = None
    if schedule.paused_at is not None:
        paused = {
            "at": schedule.paused_at,
            "by": schedule.paused_by.get_username() if schedule.paused_by else None,
            "note": schedule.pause_note,
        }
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "description": schedule.description,
        "job": schedule.job.name,
        "params": masked_params(schedule.params or {}, schedule.job.name),
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "paused": paused,
        "start_at": schedule.start_at,
        "end_at": schedule.end_at,
        "overlap_policy": schedule.overlap_policy,
        "misfire_policy": schedule.misfire_policy,
        "catchup_window": schedule.catchup_window,
        "max_catchup_runs": schedule.max_catchup_runs,
        "jitter": schedule.jitter,
        "queue": schedule.queue,
        "retry_max_attempts": schedule.retry_max_attempts,
        "retry_backoff_base": schedule.retry_backoff_base,
        "retry_backoff_cap": schedule.retry_backoff_cap,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    }
