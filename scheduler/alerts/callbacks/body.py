"""What a completion callback says: the end of one occurrence, built at the delivery's first
attempt and stored with it (a retry sends the same body; the record shows what went out).

Never a secret: the run's texts were masked by the worker, and are masked again here with
its schedule's (or its request's) secret values, as alerts are; the parameters are not sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse

from scheduler.alerts.channels.base import DeliveryError
from scheduler.alerts.masking import scrub, secret_values
from scheduler.alerts.messages import MAX_ERROR, Alert, absolute, admin_url, site_name
from scheduler.alerts.models import CallbackDelivery
from scheduler.runs.models import JobRun, RunRequest, status_label


def build(delivery: CallbackDelivery) -> dict[str, Any]:
    """The body of ``delivery``, read from its run. Raises a final :class:`DeliveryError`
    when the run is gone (pruned from the history before it could be sent)."""
    run = JobRun.objects.select_related("schedule__job").filter(pk=delivery.run_id).first()
    if run is None:
        raise DeliveryError("the run no longer exists (pruned from the history)", final=True)
    secrets = _secrets(run, delivery.occurrence_id)
    schedule = run.schedule
    return {
        "event": f"run.{delivery.run_status}",
        "delivery_id": delivery.pk,
        # The id the run was triggered with (its first attempt), and the attempt that ended.
        "run_id": delivery.occurrence_id,
        "attempt_id": run.pk,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "job": run.task_name,
        "schedule": {"id": schedule.pk, "name": schedule.name} if schedule else None,
        "trigger": run.trigger,
        "status": delivery.run_status,
        "scheduled_for": _when(run.scheduled_for),
        "started_at": _when(run.started_at),
        "finished_at": _when(run.finished_at),
        "duration": run.duration,
        "result": scrub(run.result, secrets) or None,
        "error_type": run.error_type or None,
        "error_message": scrub(run.error_message, secrets)[:MAX_ERROR] or None,
        "note": scrub(run.note, secrets) or None,
        "links": {
            "run": admin_url("scheduler_jobrun_change", run.pk),
            # The run as the HTTP API shows it (what a trigger's Location named).
            "api": absolute(reverse("api:read_run", args=[delivery.occurrence_id])),
        },
        "site": site_name(),
    }


def _secrets(run: JobRun, occurrence_id: int) -> list[str]:
    if run.schedule is not None:
        return secret_values(run.schedule.params, run.schedule.job.name)
    # A run an application triggered: its request keeps the parameters it was sent (sealed).
    sent = RunRequest.objects.filter(run_id=occurrence_id).values_list("kwargs", flat=True)
    return secret_values(sent.first(), run.task_name)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def as_alert(body: dict[str, Any]) -> Alert:
    """The body as an alert, for a channel that takes Slack-compatible messages."""
    label = status_label(body["status"])
    name = body["schedule"]["name"] if body.get("schedule") else body["job"]
    attempts = f" (attempt {body['attempt']} of {body['max_attempts']})"
    took = f" after {body['duration']:.1f} s" if body.get("duration") is not None else ""
    error = ": ".join(t for t in (body.get("error_type"), body.get("error_message")) if t)
    return Alert(
        event=body["status"],
        kind="run",
        title=f"{label}: {name}",
        summary=f"Run #{body['run_id']} of {body['job']}: {label.lower()}{took}{attempts}.",
        error=error,
        site=body.get("site", ""),
        links=body.get("links", {}),
    )
