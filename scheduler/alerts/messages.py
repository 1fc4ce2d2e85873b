"""What an alert says, built once when it is raised and stored with each delivery (so a retry
sends the same thing, and the record shows what went out). Every channel renders this one
shape; it never holds a secret: errors are masked with the schedule's secret values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse
from django.utils.http import urlencode

from scheduler.alerts.masking import scrub, secret_values
from scheduler.alerts.models import Incident
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule

Kind = Incident.Kind
#: Longest error text an alert carries (the run's page has all of it).
MAX_ERROR = 2000


@dataclass
class Alert:
    event: str  # opened, reminder, resolved, test
    kind: str  # failed, missed, too_long, test
    title: str
    summary: str
    error: str = ""
    site: str = ""
    schedule: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    incident: dict[str, Any] | None = None
    links: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    @property
    def headline(self) -> str:
        """The title with where it happened, for a subject line."""
        return f"[{self.site}] {self.title}" if self.site else self.title


def site_name() -> str:
    return urlsplit(settings.SITE_URL).netloc or settings.SITE_URL


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def admin_url(name: str, *args: Any, query: dict[str, Any] | None = None) -> str:
    path = reverse(f"admin:{name}", args=args)
    return absolute(f"{path}?{urlencode(query)}" if query else path)


def run_error(run: JobRun | None, schedule: Schedule | None) -> str:
    """The run's error in one piece, the schedule's secret values masked."""
    if run is None:
        return ""
    if run.error_message or run.error_type:
        text = f"{run.error_type}: {run.error_message}" if run.error_type else run.error_message
    else:
        text = run.note
    secrets = secret_values(schedule.params, schedule.job.name) if schedule else []
    return scrub(text, secrets)[:MAX_ERROR]


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _title(incident: Incident, event: str, name: str) -> tuple[str, str]:
    """(title, summary) for an incident's event."""
    count = incident.count
    if incident.schedule_id is None:  # a platform incident
        if event == "resolved":
            return "Recovered: runs start on time again", incident.resolution
        return incident.title, (
            f"{incident.title}. Seen {_plural(count, 'time')} since "
            f"{incident.opened_at:%Y-%m-%d %H:%M:%S} UTC."
        )
    if event == "resolved":
        if incident.kind == Kind.TOO_LONG:
            return f"Finished: {name}", incident.resolution
        return f"Recovered: {name}", incident.resolution
    if incident.kind == Kind.FAILED:
        if event == "reminder":
            return f"Still failing: {name}", (
                f"{name} has failed {_plural(count, 'time')} since "
                f"{incident.opened_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        return f"Failed: {name}", incident.title
    if incident.kind == Kind.MISSED:
        prefix = "Still missing runs" if event == "reminder" else "Missed"
        return f"{prefix}: {name}", incident.title
    prefix = "Still too long" if event == "reminder" else "Running too long"
    return f"{prefix}: {name}", incident.title


def for_incident(incident: Incident, event: str, run: JobRun | None = None) -> Alert:
    """The alert announcing ``event`` of ``incident`` (``run``: the run it is about)."""
    schedule = incident.schedule
    name = schedule.name if schedule is not None else "the platform"
    title, summary = _title(incident, event, name)
    links = {"incident": admin_url("scheduler_incident_change", incident.pk)}
    schedule_info = None
    if schedule is not None:
        schedule_info = {
            "id": schedule.pk,
            "name": schedule.name,
            "job": schedule.job.name,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
        }
        links["schedule"] = admin_url("scheduler_schedule_change", schedule.pk)
        links["runs"] = admin_url("scheduler_jobrun_changelist", query={"schedule": schedule.pk})
    run_id = run.pk if run is not None else incident.last_run_id
    run_info = None
    if run is not None:
        run_info = {
            "id": run.pk,
            "status": run.status,
            "attempt": run.attempt,
            "scheduled_for": _when(run.scheduled_for),
            "started_at": _when(run.started_at),
            "finished_at": _when(run.finished_at),
        }
    if run_id:
        links["run"] = admin_url("scheduler_jobrun_change", run_id)
    return Alert(
        event=event,
        kind=incident.kind,
        title=title,
        summary=summary,
        error=incident.last_error if event != "resolved" else "",
        site=site_name(),
        schedule=schedule_info,
        run=run_info,
        incident={
            "id": incident.pk,
            "state": incident.state,
            "count": incident.count,
            "opened_at": _when(incident.opened_at),
            "last_seen_at": _when(incident.last_seen_at),
            "resolved_at": _when(incident.resolved_at),
        },
        links=links,
    )


def for_test(channel_name: str) -> Alert:
    return Alert(
        event="test",
        kind="test",
        title=f"Test alert: {channel_name}",
        summary=f"A test alert from {site_name()}: the channel {channel_name} works.",
        site=site_name(),
        links={"site": absolute("/admin/")},
    )


def describe_failure(schedule: Schedule, run: JobRun, streak: int) -> str:
    what = {
        "timed_out": "timed out",
        "lost": "was lost (its worker went away)",
    }.get(run.status, "failed")
    attempts = f" after {_plural(run.attempt, 'attempt')}" if run.attempt > 1 else ""
    tail = f"; {streak} occurrences in a row have failed" if streak > 1 else ""
    return f"{schedule.name} ({schedule.job.name}) {what}{attempts}{tail}."


def describe_missed(schedule: Schedule, reason: str) -> str:
    return f"{schedule.name} ({schedule.job.name}): {reason}."


def describe_too_long(schedule: Schedule, run: JobRun, now: datetime, limit: int) -> str:
    running = _duration((now - run.started_at).total_seconds()) if run.started_at else "?"
    return (
        f"{schedule.name} ({schedule.job.name}) has been running for {running}, longer than "
        f"its maximum of {_duration(limit)}."
    )


def describe_storm(count: int, more: bool) -> str:
    many = f"{count}+" if more else str(count)
    return f"{many} schedules did not start in time: is beat running, is the queue moving?"


def describe_too_long_end(run: JobRun | None) -> str:
    if run is None:
        return "The long run is no longer running."
    seconds = run.duration
    if seconds is None and run.started_at and run.finished_at:
        seconds = (run.finished_at - run.started_at).total_seconds()
    took = f" after {_duration(seconds)}" if seconds is not None else ""
    return f"The long run ended: {run.get_status_display().lower()}{took}."
