"""Run a catalog job now, with parameters, for an application: the HTTP API's trigger, and a
project's own Django views (``trigger("acme.export", {...}, user=request.user)``).

The run is committed before its message is published (the outbox), so a broker that is down
leaves it pending for beat's sweep to publish. Everything is checked before anything is
written: an unknown or unavailable job, parameters that fail the job's schema, a user without
permission, an idempotency key reused with other parameters, a callback URL the platform may
not call; each refusal raises and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery, current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from jobs_catalog.definition import Job
from jobs_catalog.errors import UnknownJobError
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from jobs_catalog.secrets import seal_params
from scheduler.clock import Clock, get_clock
from scheduler.internal_tasks import is_internal
from scheduler.runs.actions import who
from scheduler.runs.callback_urls import check_callback_url
from scheduler.runs.messages import request_message
from scheduler.runs.models import JobRun, RunRequest
from scheduler.runs.outbox import publish

#: The permission a user needs to run a catalog job with parameters of their choosing.
TRIGGER_PERMISSION = "scheduler.trigger_job"
#: The longest idempotency key accepted.
MAX_IDEMPOTENCY_KEY = 200


class TriggerError(Exception):
    """A trigger refused; nothing was queued. ``code`` names the reason for machines."""

    code = "refused"


class JobUnavailableError(TriggerError):
    code = "job_unavailable"


class IdempotencyConflictError(TriggerError):
    """The idempotency key was used before, for other parameters or another job."""

    code = "idempotency_conflict"

    def __init__(self, message: str, run: JobRun):
        super().__init__(message)
        self.run = run


class CallbackRefusedError(TriggerError):
    code = "invalid_callback_url"


@dataclass(frozen=True)
class Triggered:
    run: JobRun
    #: False when an earlier request with the same idempotency key made the run.
    created: bool
    #: Set when the run was committed but could not be published now (beat sends it).
    warning: str = ""


#: Checks a callback URL: returns the problem, or None when the platform may call it.
CallbackCheck = Callable[[str], "str | None"]


def trigger(
    job: str | Job,
    params: Mapping[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    **options: Any,
) -> JobRun:
    """Queue one run of the catalog job ``job`` with ``params`` now and return it.

    ``user`` (when given) needs the ``scheduler.trigger_job`` permission and is recorded as
    who asked. Options: ``idempotency_key`` (the same key and parameters return the first
    run), ``callback_url`` (POSTed when the run ends), ``queue`` (instead of the job's).
    Raises ``UnknownJobError``,
    ``ParameterError`` (field errors), ``PermissionDenied`` or a :class:`TriggerError`.
    """
    return trigger_request(job, params, user, **options).run


def trigger_request(
    job: str | Job,
    params: Mapping[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    *,
    idempotency_key: str = "",
    callback_url: str = "",
    queue: str | None = None,
    check_callback: CallbackCheck | None = None,
    clock: Clock | None = None,
    app: Celery | None = None,
) -> Triggered:
    """:func:`trigger`, telling a new run from one an idempotency key found again."""
    clock = clock or get_clock()
    if user is not None and not user.has_perm(TRIGGER_PERMISSION):
        raise PermissionDenied(f"{who(user)} may not run catalog jobs ({TRIGGER_PERMISSION}).")
    definition = _job(job)
    clear = definition.validate(params)
    key = (idempotency_key or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise TriggerError(f"An idempotency key has at most {MAX_IDEMPOTENCY_KEY} characters.")
    digest = params_digest(definition.name, clear)
    if key:
        earlier = _earlier(user, key, definition.name, digest)
        if earlier is not None:
            return Triggered(earlier, created=False)
    if callback_url:
        problem = (check_callback or check_callback_url)(callback_url)
        if problem:
            raise CallbackRefusedError(f"callback_url: {problem}")
    now = clock.now()
    try:
        with transaction.atomic():
            run = JobRun.objects.create(
                task_name=definition.name,
                scheduled_for=now,
                trigger=JobRun.Trigger.API,
                status=JobRun.Status.PENDING,
                params=definition.mask(clear),
                queue=queue or definition.queue or "",
                max_attempts=definition.retry.max_attempts,
                task_id=uuid.uuid4(),
                created_at=now,
                note=f"Triggered by {who(user)}." if user is not None else "",
            )
            RunRequest.objects.create(
                run=run,
                requested_by=user if user is not None and user.is_authenticated else None,
                idempotency_key=key,
                params_digest=digest,
                kwargs=seal_params(clear, definition.secret_fields),
                callback_url=callback_url,
                created_at=now,
            )
    except IntegrityError:
        # Two requests with one key at once: the other one committed first.
        earlier = _earlier(user, key, definition.name, digest) if key else None
        if earlier is None:
            raise
        return Triggered(earlier, created=False)
    try:
        publish([request_message(run, run.request)], app=app or current_app, clock=clock)
    except Exception as exc:  # committed: beat's sweep publishes it
        return Triggered(run, created=True, warning=f"not sent yet ({type(exc).__name__})")
    run.refresh_from_db()
    return Triggered(run, created=True)


def _job(job: str | Job) -> Job:
    name = job.name if isinstance(job, Job) else str(job)
    if is_internal(name):
        raise UnknownJobError(name, [])
    definition = registry.get(name)  # UnknownJobError names the known ones
    mirror = JobDefinition.objects.filter(name=name).only("available", "unavailable_reason")
    row = mirror.first()
    if row is not None and not row.available:
        raise JobUnavailableError(
            f"Job {name!r} cannot run now: {row.unavailable_reason or 'no worker has it'}."
        )
    return definition


def _earlier(user: AbstractBaseUser | None, key: str, job: str, digest: str) -> JobRun | None:
    owner = user if user is not None and user.is_authenticated else None
    request = (
        RunRequest.objects.filter(requested_by=owner, idempotency_key=key)
        .select_related("run")
        .first()
    )
    if request is None:
        return None
    if request.run.task_name != job or request.params_digest != digest:
        raise IdempotencyConflictError(
            f"Idempotency key {key!r} was used for run #{request.run_id} with other "
            "parameters; use a new key for a new request.",
            request.run,
        )
    return request.run


def params_digest(job: str, params: Mapping[str, Any]) -> str:
    """A keyed digest of a job's validated parameters: equal for the same request, and
    nothing a reader of the table can test secret guesses against."""
    body = json.dumps([job, params], sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(settings.SECRET_KEY.encode(), body.encode(), hashlib.sha256).hexdigest()
