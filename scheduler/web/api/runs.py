"""Runs: read one (status, attempts, progress, result, error; logs on request), cancel one,
and list them with the run history's indexed filters, a page at a time."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest
from ninja import Field as NinjaField
from ninja import Query, Router, Schema

from scheduler.runs import actions
from scheduler.runs.models import JobRun
from scheduler.web.api import cursor
from scheduler.web.api.auth import require
from scheduler.web.api.errors import ApiError
from scheduler.web.api.schemas import ErrorOut, RunOut, RunPageOut, UtcDatetime
from scheduler.web.api.serialize import LIST_DEFERRED, occurrence, run_out

router = Router(tags=["runs"])
VIEW_RUNS = "scheduler.view_jobrun"
#: Every run endpoint takes parameters a client can get wrong (422 names them).
ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut}
#: The most runs on one page.
MAX_PAGE = 200


class RunFilters(Schema):
    job: str | None = NinjaField(None, description="A job's name.")
    status: JobRun.Status | None = None
    trigger: JobRun.Trigger | None = None
    schedule: int | None = NinjaField(None, description="A schedule's id.")
    since: UtcDatetime | None = NinjaField(None, description="Scheduled at or after this time.")
    until: UtcDatetime | None = NinjaField(None, description="Scheduled before this time.")
    limit: int = NinjaField(50, ge=1, le=MAX_PAGE)
    cursor: str | None = NinjaField(None, description="From the previous page's `next`.")


def _found(run_id: int) -> tuple[JobRun, list[JobRun]]:
    found = occurrence(run_id)
    if found is None:
        raise ApiError(404, "unknown_run", f"There is no run #{run_id}.")
    return found


@router.get(
    "/runs/{run_id}",
    response={200: RunOut, 404: ErrorOut, **ERRORS},
    summary="Read a run",
    description="Any attempt's id finds its run; the fields describe the latest attempt.",
)
def read_run(request: HttpRequest, run_id: int, logs: bool = False) -> dict:
    require(request, VIEW_RUNS)
    latest, attempts = _found(run_id)
    return run_out(request, latest, attempts=attempts, logs=logs)


@router.post(
    "/runs/{run_id}/cancel",
    response={200: RunOut, 404: ErrorOut, 409: ErrorOut, **ERRORS},
    summary="Cancel a run",
    description=(
        "A run still to run is dropped; a running one is stopped (a job that checks "
        "`ctx.cancelled` stops between chunks). 409 when it already ended."
    ),
)
def cancel_run(request: HttpRequest, run_id: int) -> dict:
    require(request, "scheduler.cancel_run")
    latest, _attempts = _found(run_id)
    try:
        actions.cancel_run(latest.pk, request.user)
    except actions.RunActionError as exc:
        raise ApiError(409, "not_cancellable", str(exc), run_id=latest.first_attempt_id) from None
    latest, attempts = _found(run_id)
    return run_out(request, latest, attempts=attempts)


@router.get("/runs", response={200: RunPageOut, **ERRORS}, summary="List runs")
def list_runs(request: HttpRequest, filters: Query[RunFilters]) -> dict:
    """Newest first, each attempt a row; filter by job, status, trigger, schedule and time.
    Follow ``next`` for older runs (no total is counted)."""
    require(request, VIEW_RUNS)
    rows = JobRun.objects.defer(*LIST_DEFERRED).select_related("schedule")
    if filters.job:
        rows = rows.filter(task_name=filters.job)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.trigger:
        rows = rows.filter(trigger=filters.trigger)
    if filters.schedule is not None:
        rows = rows.filter(schedule_id=filters.schedule)
    if filters.since:
        rows = rows.filter(scheduled_for__gte=filters.since)
    if filters.until:
        rows = rows.filter(scheduled_for__lt=filters.until)
    items, after = cursor.page(rows, filters.cursor, filters.limit)
    following = None
    if after:
        query = {k: v for k, v in request.GET.items() if k != "cursor"}
        query["cursor"] = after
        following = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
    return {"items": [run_out(request, row) for row in items], "next": following}
