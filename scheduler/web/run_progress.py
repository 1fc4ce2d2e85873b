"""A run's progress as the admin shows it: a bar with its figures and the job's message, on
the run's page and in the overview's "running now", and the JSON its script polls
(``scheduler/run_progress.js``) while the run is active, so the bar moves without a reload.

The figures are worded here once, for the page and for the JSON alike. The message was
masked by the worker when it was stored (``scheduler.runs.progress``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.html import format_html

from scheduler.formatting import format_time
from scheduler.runs.models import JobRun, status_label

#: Milliseconds between two polls of an active run's progress (read by the script from the
#: bar's data-every attribute).
POLL_EVERY_MS = 1500


@dataclass(frozen=True)
class Shown:
    """What the bar shows of a run's ``progress``."""

    done: float | None = None
    total: float | None = None
    message: str = ""
    at: str = ""

    @classmethod
    def of(cls, progress: Any) -> Shown:
        """From ``JobRun.progress`` (None when nothing was reported; odd values ignored)."""
        if not isinstance(progress, dict):
            return cls()
        return cls(
            _number(progress.get("done")),
            _number(progress.get("total")),
            str(progress.get("message") or ""),
            str(progress.get("at") or ""),
        )

    @property
    def reported(self) -> bool:
        return self.done is not None

    @property
    def percent(self) -> int | None:
        """Whole percent done, rounded down (100 only once done reaches the total); None
        when the total is unknown."""
        if self.done is None or not self.total:
            return None
        return max(0, min(100, math.floor(100 * self.done / self.total)))

    @property
    def figures(self) -> str:
        if self.done is None:
            return "no progress reported yet"
        if self.percent is None:
            return f"{amount(self.done)} done"
        return f"{amount(self.done)} of {amount(self.total)} ({self.percent}%)"

    @property
    def reported_at(self) -> str:
        try:
            moment = datetime.fromisoformat(self.at)
        except ValueError:
            return ""
        return f"reported {format_time(moment)}"


def amount(value: float | None) -> str:
    """A figure as people read it: whole numbers with thousands separators, else one
    decimal."""
    if value is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def is_active(status: str) -> bool:
    return status in JobRun.ACTIVE


def as_json(run: JobRun) -> dict[str, Any]:
    """What the script polls: the run's status and its progress, worded."""
    shown = Shown.of(run.progress)
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": status_label(run.status),
        "active": is_active(run.status),
        "progress": run.progress if shown.reported else None,
        "percent": shown.percent,
        "figures": shown.figures,
        "message": shown.message,
        "reported_at": shown.reported_at,
    }


def bar(run: JobRun, url: str) -> str:
    """The bar of ``run`` (its ``progress`` and ``status`` loaded); ``url`` is its JSON,
    polled while the run is active. A bar with no value (the total unknown) is
    indeterminate."""
    shown = Shown.of(run.progress)
    active = is_active(run.status)
    if shown.percent is not None:
        meter = format_html(
            '<progress class="scheduler-progress-bar" max="100" value="{}">{}%</progress>',
            shown.percent,
            shown.percent,
        )
    else:
        meter = format_html(
            '<progress class="scheduler-progress-bar"{}></progress>',
            "" if shown.reported else " hidden",
        )
    return format_html(
        '<div class="scheduler-progress" data-progress-url="{}" data-active="{}" '
        'data-every="{}" title="{}">{}'
        '<span class="scheduler-progress-figures">{}</span>'
        '<span class="scheduler-progress-message">{}</span>'
        '<span class="scheduler-progress-state" aria-live="polite"></span></div>',
        url,
        "true" if active else "false",
        POLL_EVERY_MS,
        shown.reported_at,
        meter,
        shown.figures,
        shown.message,
    )
