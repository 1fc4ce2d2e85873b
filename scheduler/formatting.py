"""Text both admins (the web room's and alerting's) show: a missing value, a time for a list
column, a duration, a block of program output."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html

#: Shown for a value that cannot be computed or does not apply.
NONE = "-"


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


def monospace(text: str | None, *, empty: str = NONE) -> str:
    """A block of program output (traceback, logs, JSON), kept as written."""
    if not text:
        return empty
    return format_html('<pre class="scheduler-pre">{}</pre>', text)
