"""How the admin shows runs, times, durations and parameters: small formatting helpers shared
by the schedules admin and the run history admin."""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import format_html, format_html_join

from jobs_catalog.params import MASK
from jobs_catalog.registry import registry
from scheduler.formatting import NONE, format_duration, format_time, monospace, pretty_json
from scheduler.runs.models import JobRun, status_label

__all__ = [
    "NONE",
    "format_duration",
    "format_time",
    "masked_params",
    "monospace",
    "params_table",
    "pretty_json",
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
