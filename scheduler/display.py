"""How the admin shows runs, times, durations and parameters: small formatting helpers shared
by the schedules admin and the run history admin."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs_catalog.params import MASK
from jobs_catalog.registry import registry
from scheduler.forms import zone_or_utc
from scheduler.models import JobRun

#: Shown for a value that cannot be computed or does not apply.
NONE = "-"


def status_label(status: str | None) -> str:
    """ "Pending (committed, not yet published)" -> "Pending"."""
    if not status:
        return NONE
    try:
        return str(JobRun.Status(status).label).split(" (")[0]
    except ValueError:
        return status


def status_badge(status: str | None) -> str:
    if not status:
        return NONE
    return format_html(
        '<span class="scheduler-badge scheduler-status-{}">{}</span>', status, status_label(status)
    )


def trigger_label(trigger: str | None) -> str:
    if not trigger:
        return NONE
    try:
        return str(JobRun.Trigger(trigger).label)
    except ValueError:
        return trigger


def format_moment(moment: datetime | None, zone_name: str, *, seconds: bool = False) -> str:
    """A time as wall time in the schedule's zone, with the zone's abbreviation."""
    if moment is None:
        return NONE
    local = moment.astimezone(zone_or_utc(zone_name))
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local.strftime(shape)} {local.tzname()}"


def compact_time(moment: datetime | None) -> str:
    """A time in the site's zone, short enough for a list column."""
    if moment is None:
        return NONE
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}"


def format_duration(seconds: float | None) -> str:
    """0.042 -> "42 ms", 75.2 -> "1 min 15 s", 7322 -> "2 h 2 min"."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def masked_params(params: Any, job_name: str) -> Any:
    """``params`` fit to show: the job's secret values masked; every value masked when the
    job's code (and so its list of secrets) is not installed here."""
    if not isinstance(params, dict):
        return params
    job = registry.find(job_name)
    if job is None:
        return {key: MASK for key in params}
    return job.mask(params)


def params_table(params: dict[str, Any]) -> str:
    if not params:
        return "none"
    rows = (
        (name, value if isinstance(value, str) else json.dumps(value))
        for name, value in params.items()
    )
    return format_html(
        '<table class="scheduler-params"><tbody>{}</tbody></table>',
        format_html_join("", "<tr><th><code>{}</code></th><td>{}</td></tr>", rows),
    )


def monospace(text: str | None, *, empty: str = NONE) -> str:
    """A block of program output (traceback, logs, JSON), kept as written."""
    if not text:
        return empty
    return format_html('<pre class="scheduler-pre">{}</pre>', text)
