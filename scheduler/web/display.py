"""How the admin shows runs, times, durations and parameters: small formatting helpers shared
by the schedules admin and the run history admin."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils.html import format_html, format_html_join

from jobs_catalog.params import MASK
from jobs_catalog.registry import registry
from scheduler.formatting import NONE, compact_time, format_duration, monospace
from scheduler.runs.models import JobRun, status_label
from scheduler.web.forms import zone_or_utc

__all__ = [
    "NONE",
    "compact_time",
    "format_duration",
    "format_moment",
    "masked_params",
    "monospace",
    "params_table",
    "status_badge",
    "status_label",
    "trigger_label",
]


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
