"""The message of a run, as the outbox hands it to a publisher: a catalog job's or a plain
django-celery-beat entry's task, with the headers the worker finds the run by.

Every message that runs an attempt carries its headers from :func:`attempt_headers`, and the
worker reads the attempt's id back with :func:`attempt_id_of`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django_celery_beat.models import PeriodicTask

from scheduler.policies.retry import RUN_HEADERS
from scheduler.runs.models import RunRequest
from scheduler.schedules.periodic import SCHEDULE_HEADER

#: The header naming the attempt (the ``JobRun`` row) a message runs.
ATTEMPT_HEADER = "attempt_id"
#: The same id under its former name, which said "occurrence" for the attempt's own id. Still
#: sent, so that a worker of an earlier version finds the attempt, and still read, so that a
#: message sent by an earlier beat or worker (in flight across an upgrade) is found too.
FORMER_ATTEMPT_HEADER = "occurrence_id"
#: Headers a later attempt's message carries over from the first one's.
CARRIED_HEADERS = ("periodic_task_name", SCHEDULE_HEADER, *RUN_HEADERS)


@dataclass
class Outgoing:
    """One message to publish for a committed attempt."""

    attempt_id: int
    task_id: uuid.UUID
    task_name: str
    scheduled_for: datetime
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    #: When to publish: the scheduled time plus the schedule's jitter (None: at once).
    due_at: datetime | None = None


def attempt_headers(attempt_id: int, scheduled_for: datetime, trigger: str) -> dict[str, Any]:
    """The headers the worker finds an attempt by."""
    return {
        ATTEMPT_HEADER: attempt_id,
        FORMER_ATTEMPT_HEADER: attempt_id,
        "scheduled_for": scheduled_for.isoformat(),
        "trigger": trigger,
    }


def attempt_id_of(header: Callable[[str], Any]) -> int | None:
    """The attempt a message runs, from its headers (``header(name)`` is one, or None);
    None for a message sent by no outbox (a direct call) or naming none readable."""
    value = header(ATTEMPT_HEADER)
    if value is None:
        value = header(FORMER_ATTEMPT_HEADER)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def outgoing_for(task: PeriodicTask, attempt_id: int, task_id: uuid.UUID, o: Any) -> Outgoing:
    """The message for the attempt ``attempt_id`` of an occurrence of ``task`` (``o`` has
    its ``scheduled_for`` and ``trigger``), as the stock scheduler would send it, plus the
    headers the worker finds the attempt by."""
    options: dict[str, Any] = {}
    for option in ("queue", "exchange", "routing_key", "priority"):
        value = getattr(task, option)
        if value is not None:
            options[option] = value
    if task.expire_seconds or task.expires:
        options["expires"] = task.expire_seconds or task.expires
    headers = json.loads(task.headers or "{}")
    headers["periodic_task_name"] = task.name
    headers.update(attempt_headers(attempt_id, o.scheduled_for, o.trigger))
    return Outgoing(
        attempt_id=attempt_id,
        task_id=task_id,
        task_name=task.task,
        scheduled_for=o.scheduled_for,
        args=json.loads(task.args or "[]"),
        kwargs=json.loads(task.kwargs or "{}"),
        options=options,
        headers=headers,
    )


def outgoing_for_attempt(
    attempt: Any,
    *,
    task_name: str,
    kwargs: dict[str, Any],
    queue: str,
    header: Callable[[str], Any],
    countdown: float = 0.0,
) -> Outgoing:
    """The message for a later ``attempt`` (a ``JobRun``) of a catalog job's occurrence,
    sent by the worker that ran the one before: a retry, or the rerun of a lost attempt.
    ``header(name)`` reads the earlier message's headers, whose ``CARRIED_HEADERS`` it
    keeps; ``kwargs`` are sent as given (secret values sealed)."""
    headers = {name: value for name in CARRIED_HEADERS if (value := header(name)) is not None}
    headers.update(attempt_headers(attempt.pk, attempt.scheduled_for, attempt.trigger))
    options: dict[str, Any] = {"countdown": countdown} if countdown else {}
    if queue:
        options["queue"] = queue
    return Outgoing(
        attempt_id=attempt.pk,
        task_id=attempt.task_id,
        task_name=task_name,
        scheduled_for=attempt.scheduled_for,
        kwargs=kwargs,
        options=options,
        headers=headers,
    )


def request_message(attempt: Any, request: Any) -> Outgoing:
    """The message of an attempt of a run an application asked for (``RunRequest``: no cron
    entry), rebuilt from the request's sealed keyword arguments: its first send, and again
    after a crash or a lost message."""
    options: dict[str, Any] = {"queue": attempt.queue} if attempt.queue else {}
    return Outgoing(
        attempt_id=attempt.pk,
        task_id=attempt.task_id,
        task_name=attempt.task_name,
        scheduled_for=attempt.scheduled_for,
        kwargs=dict(request.kwargs),
        options=options,
        headers=attempt_headers(attempt.pk, attempt.scheduled_for, attempt.trigger),
    )


def message_of(attempt: Any) -> Outgoing | None:
    """The message that runs ``attempt`` (a ``JobRun``), from its cron entry or from the
    request of its occurrence; None when neither is left to rebuild it from."""
    if attempt.periodic_task_id is not None and attempt.periodic_task is not None:
        return outgoing_for(attempt.periodic_task, attempt.pk, attempt.task_id, attempt)
    request = request_of(attempt)
    return request_message(attempt, request) if request is not None else None


def request_of(attempt: Any) -> RunRequest | None:
    """The ``RunRequest`` of ``attempt``'s occurrence (a later attempt uses its first's)."""
    if attempt.occurrence_id is not None:
        return RunRequest.objects.filter(run_id=attempt.occurrence_id).first()
    try:
        return attempt.request
    except RunRequest.DoesNotExist:
        return None
