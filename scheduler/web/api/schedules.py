"""Schedules: list, read, create, change, pause, resume and run now, with the admin's rules
(the model's fields and constraints, ``Schedule.clean`` and the job's parameter schema,
through ``save_schedule``) and the admin's permissions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Router
from ninja.responses import Status

from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from scheduler.runs import actions
from scheduler.schedules import services
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from scheduler.web.api import cursor as paging
from scheduler.web.api.auth import require
from scheduler.web.api.errors import ApiError
from scheduler.web.api.jobs import catalog_row
from scheduler.web.api.schemas import (
    ErrorOut,
    PauseIn,
    RunOut,
    ScheduleChange,
    ScheduleIn,
    ScheduleOut,
    SchedulePageOut,
)
from scheduler.web.api.serialize import occurrence, run_out, run_url, schedule_out
from scheduler.web.api.throttle import UserRateThrottle
from scheduler.web.forms import SCHEDULE_FIELDS

router = Router(tags=["schedules"])
#: Every schedule endpoint takes parameters a client can get wrong (422 names them).
ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut}
MISSING = {404: ErrorOut}
#: A JSON body that does not parse answers 400.
MALFORMED = {400: ErrorOut}
#: The most schedules on one page.
MAX_PAGE = 200
#: Fields copied from the request as given: the admin form's own.
PLAIN_FIELDS = SCHEDULE_FIELDS
#: Fields a create may leave out for the model's default (the retry ones default to empty).
DEFAULTED = {"overlap_policy", "misfire_policy", "catchup_window", "max_catchup_runs", "jitter"}


def _schedule(schedule_id: int) -> Schedule:
    found = (
        Schedule.objects.select_related("job", "paused_by", "periodic_task")
        .filter(pk=schedule_id)
        .first()
    )
    if found is None:
        raise ApiError(404, "unknown_schedule", f"There is no schedule #{schedule_id}.")
    return found


def _job(name: str) -> JobDefinition:
    row = catalog_row(name)
    if row is None:
        raise ApiError(
            422, "invalid_schedule", "The schedule is invalid.", {"job": [f"unknown job {name!r}"]}
        )
    return row


def _keep_stored_secrets(schedule: Schedule, given: dict[str, Any]) -> dict[str, Any]:
    """A secret parameter left out (or empty) keeps its stored value, as in the admin."""
    job = registry.find(schedule.job.name)
    stored = schedule.params or {}
    merged = dict(given)
    for name in job.secret_fields if job is not None else ():
        if merged.get(name) in (None, "") and stored.get(name) not in (None, ""):
            merged[name] = stored[name]
    return merged


def _save(schedule: Schedule) -> Schedule:
    """Validate like the admin form and save with the cron entry, or answer 422 with each
    field's problems (nothing saved)."""
    try:
        with transaction.atomic():
            schedule.full_clean(exclude=["periodic_task", "paused_by", "params"])
            save_schedule(schedule)
    except ValidationError as exc:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"schedule": exc.messages}
        fields = {("request" if k == "__all__" else k): v for k, v in fields.items()}
        raise ApiError(422, "invalid_schedule", "The schedule is invalid.", fields) from None
    return Schedule.objects.select_related("job", "paused_by").get(pk=schedule.pk)


@router.get("/schedules", response={200: SchedulePageOut, **ERRORS})
def list_schedules(
    request: HttpRequest,
    job: str | None = None,
    enabled: bool | None = None,
    paused: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict:
    """Newest first; follow ``next`` for more."""
    require(request, "scheduler.view_schedule")
    limit = max(1, min(limit, MAX_PAGE))
    rows = Schedule.objects.select_related("job", "paused_by")
    if job:
        rows = rows.filter(job__name=job)
    if enabled is not None:
        rows = rows.filter(enabled=enabled)
    if paused is not None:
        rows = rows.filter(paused_at__isnull=not paused)
    if cursor:
        _moment, last = paging.decode(cursor)
        rows = rows.filter(pk__lt=last)
    items = list(rows.order_by("-id")[: limit + 1])
    following = None
    if len(items) > limit:
        items = items[:limit]
        query = {k: v for k, v in request.GET.items() if k != "cursor"}
        query["cursor"] = paging.encode(None, items[-1].pk)
        following = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
    return {"items": [schedule_out(s) for s in items], "next": following}


@router.get("/schedules/{schedule_id}", response={200: ScheduleOut, **MISSING, **ERRORS})
def read_schedule(request: HttpRequest, schedule_id: int) -> dict:
    require(request, "scheduler.view_schedule")
    return schedule_out(_schedule(schedule_id))


@router.post("/schedules", response={201: ScheduleOut, **MALFORMED, **ERRORS})
def create_schedule(request: HttpRequest, response: HttpResponse, payload: ScheduleIn) -> Status:
    require(request, "scheduler.add_schedule")
    values = payload.dict()
    schedule = Schedule(job=_job(values.pop("job")), params=values.pop("params") or {})
    for name in PLAIN_FIELDS:
        if values.get(name) is None and name in DEFAULTED:
            continue
        setattr(schedule, name, values.get(name))
    schedule.queue = schedule.queue or ""
    saved = _save(schedule)
    response["Location"] = request.build_absolute_uri(reverse("api:read_schedule", args=[saved.pk]))
    return Status(201, schedule_out(saved))


@router.patch(
    "/schedules/{schedule_id}", response={200: ScheduleOut, **MALFORMED, **MISSING, **ERRORS}
)
def change_schedule(request: HttpRequest, schedule_id: int, payload: ScheduleChange) -> dict:
    """Only the fields given change; the job is fixed once the schedule exists."""
    require(request, "scheduler.change_schedule")
    schedule = _schedule(schedule_id)
    given = payload.dict(exclude_unset=True)
    if "params" in given:
        schedule.params = _keep_stored_secrets(schedule, given.pop("params") or {})
    for name, value in given.items():  # a null where none may be was refused (422) already
        setattr(schedule, name, "" if value is None and name in {"description", "queue"} else value)
    return schedule_out(_save(schedule))


@router.post(
    "/schedules/{schedule_id}/pause",
    response={200: ScheduleOut, **MALFORMED, **MISSING, **ERRORS},
)
def pause_schedule(request: HttpRequest, schedule_id: int, payload: PauseIn | None = None) -> dict:
    """The body (a note) may be left out."""
    require(request, "scheduler.pause_schedule")
    schedule = _schedule(schedule_id)
    if not schedule.is_paused:
        services.pause(schedule, request.user, payload.note if payload else "")
    return schedule_out(_schedule(schedule_id))


@router.post("/schedules/{schedule_id}/resume", response={200: ScheduleOut, **MISSING, **ERRORS})
def resume_schedule(request: HttpRequest, schedule_id: int) -> dict:
    require(request, "scheduler.pause_schedule")
    schedule = _schedule(schedule_id)
    if schedule.is_paused:
        services.resume(schedule)
    return schedule_out(_schedule(schedule_id))


@router.post(
    "/schedules/{schedule_id}/run-now",
    response={202: RunOut, 409: ErrorOut, 429: ErrorOut, **MISSING, **ERRORS},
    throttle=[UserRateThrottle()],
    summary="Run a schedule now",
    description="One run at once, outside the cron; the schedule's overlap policy applies.",
)
def run_schedule_now(request: HttpRequest, response: HttpResponse, schedule_id: int) -> Status:
    require(request, "scheduler.run_schedule")
    schedule = _schedule(schedule_id)
    try:
        run = actions.run_now(schedule)
    except ValueError as exc:
        raise ApiError(409, "invalid_schedule", str(exc)) from None
    latest, attempts = occurrence(run.pk)
    response["Location"] = run_url(request, run.first_attempt_id)
    return Status(202, run_out(request, latest, attempts=attempts))
