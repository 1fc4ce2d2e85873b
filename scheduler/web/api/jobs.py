"""The catalog: list jobs, describe one (its parameters' JSON Schema), and trigger one."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from ninja import Header, Router
from ninja.responses import Status

from jobs_catalog.errors import ParameterError, UnknownJobError
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from scheduler.internal_tasks import internal, is_internal
from scheduler.runs import trigger as triggers
from scheduler.web.api.auth import require
from scheduler.web.api.errors import ApiError
from scheduler.web.api.schemas import ErrorOut, JobDetailOut, JobListOut, RunOut, TriggerIn
from scheduler.web.api.serialize import occurrence, run_out, run_url
from scheduler.web.api.throttle import UserRateThrottle

router = Router(tags=["catalog"])
VIEW_JOBS = "jobs_catalog.view_jobdefinition"
ERRORS = {401: ErrorOut, 403: ErrorOut}


def _job_out(row: JobDefinition) -> dict:
    return {
        "name": row.name,
        "title": row.title,
        "description": row.description,
        "queue": row.queue,
        "available": row.available,
        "unavailable_reason": row.unavailable_reason,
        "source": row.source,
    }


def catalog_row(name: str) -> JobDefinition | None:
    """The catalog's row of the job ``name``; None for an unknown or internal one."""
    return None if is_internal(name) else JobDefinition.objects.filter(name=name).first()


def _definition(name: str) -> JobDefinition:
    row = catalog_row(name)
    if row is None:
        raise ApiError(404, "unknown_job", f"There is no job {name!r} in the catalog.")
    return row


@router.get("/jobs", response={200: JobListOut, **ERRORS}, summary="List the catalog's jobs")
def list_jobs(request: HttpRequest) -> dict:
    require(request, VIEW_JOBS)
    rows = JobDefinition.objects.exclude(internal()).order_by("name")
    return {"items": [_job_out(row) for row in rows]}


@router.get(
    "/jobs/{name}",
    response={200: JobDetailOut, 404: ErrorOut, 422: ErrorOut, **ERRORS},
    summary="Describe a job and its parameters",
)
def describe_job(request: HttpRequest, name: str) -> dict:
    require(request, VIEW_JOBS)
    row = _definition(name)
    return {
        **_job_out(row),
        "params_schema": row.params_schema,
        "defaults": row.defaults,
        "retry": row.retry_policy,
        "soft_time_limit": row.soft_time_limit,
        "time_limit": row.time_limit,
        "cancellable": bool(getattr(registry.find(row.name), "cancellable", False)),
    }


@router.post(
    "/jobs/{name}/runs",
    response={
        202: RunOut,
        400: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        422: ErrorOut,
        429: ErrorOut,
        **ERRORS,
    },
    throttle=[UserRateThrottle()],
    summary="Run a job now",
    description=(
        "Validates the parameters against the job's schema (422 with field errors, nothing "
        "queued), commits the run and queues it: 202 with the run and a Location to poll. "
        "An Idempotency-Key header makes a retried request return the first run (409 when "
        "the key was used with other parameters)."
    ),
)
def trigger_job(
    request: HttpRequest,
    response: HttpResponse,
    name: str,
    payload: TriggerIn | None = None,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Status:
    # trigger() checks the permission and the job (unknown, internal, unavailable) itself.
    payload = payload or TriggerIn()  # no body: no parameters, no callback
    try:
        done = triggers.trigger_request(
            name,
            payload.params,
            request.user,
            idempotency_key=idempotency_key or "",
            callback_url=payload.callback_url or "",
        )
    except Exception as exc:
        raise refusal(name, exc) from None
    latest, attempts = occurrence(done.run.pk)
    response["Location"] = run_url(request, done.run.first_attempt_id)
    if not done.created:
        response["Idempotent-Replayed"] = "true"
    return Status(202, run_out(request, latest, attempts=attempts))


def refusal(job: str, exc: Exception) -> Exception:
    """What a refused trigger answers (``exc`` itself when it is no refusal)."""
    if isinstance(exc, UnknownJobError):
        return ApiError(404, "unknown_job", f"Job {job!r} is not installed here.")
    if isinstance(exc, ParameterError):
        return ApiError(
            422, "invalid_parameters", f"The parameters of {job} are invalid.", exc.by_field()
        )
    if isinstance(exc, PermissionDenied):
        return ApiError(403, "permission_denied", str(exc))
    if isinstance(exc, triggers.IdempotencyConflictError):
        return ApiError(409, exc.code, str(exc), run_id=exc.run.first_attempt_id)
    if isinstance(exc, triggers.JobUnavailableError):
        return ApiError(409, exc.code, str(exc))
    if isinstance(exc, triggers.CallbackRefusedError):
        return ApiError(422, exc.code, str(exc), {"callback_url": [str(exc)]})
    if isinstance(exc, triggers.TriggerError):
        return ApiError(422, exc.code, str(exc))
    return exc
