"""The message of a run, as the outbox hands it to a publisher: a catalog job's or a plain
django-celery-beat entry's task, with the headers the worker finds the run by."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django_celery_beat.models import PeriodicTask


@dataclass
class Outgoing:
    """One message to publish for a committed occurrence."""

    occurrence_id: int
    task_id: uuid.UUID
    task_name: str
    scheduled_for: datetime
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    #: When to publish: the scheduled time plus the schedule's jitter (None: at once).
    due_at: datetime | None = None


def outgoing_for(task: PeriodicTask, occurrence_id: int, task_id: uuid.UUID, o: Any) -> Outgoing:
    """The message for an occurrence of ``task``, as the stock scheduler would send it, plus
    the headers the worker uses to find the occurrence."""
    options: dict[str, Any] = {}
    for option in ("queue", "exchange", "routing_key", "priority"):
        value = getattr(task, option)
        if value is not None:
            options[option] = value
    if task.expire_seconds or task.expires:
        options["expires"] = task.expire_seconds or task.expires
    headers = json.loads(task.headers or "{}")
    headers.update(
        periodic_task_name=task.name,
        occurrence_id=occurrence_id,
        scheduled_for=o.scheduled_for.isoformat(),
        trigger=o.trigger,
    )
    return Outgoing(
        occurrence_id=occurrence_id,
        task_id=task_id,
        task_name=task.task,
        scheduled_for=o.scheduled_for,
        args=json.loads(task.args or "[]"),
        kwargs=json.loads(task.kwargs or "{}"),
        options=options,
        headers=headers,
    )
