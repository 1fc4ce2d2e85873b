"""Text both admins (the web room's and alerting's) show: a missing value, a time, a
duration, a block of program output, a JSON value.

Every time in the admin has one shape, ``2026-12-03 14:05:09 CET``: :func:`format_time`.
Times Django renders itself (the catalog's, django-celery-beat's pages) take the same shape
from ``DATETIME_FORMAT`` in :mod:`config.formats.en.formats`.
"""

from __future__ import annotations

import ast
import json
import re
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

#: Shown for a value that cannot be computed or does not apply.
NONE = "-"
#: The date and time of :func:`format_time`, before the zone's abbreviation.
TIME_SHAPE = "%Y-%m-%d %H:%M:%S"
#: Longest text :func:`pretty_json` tries to read as a value.
MAX_PRETTY = 100_000


def _zone(zone: str | tzinfo | None) -> tzinfo:
    if isinstance(zone, tzinfo):
        return zone
    if zone:
        try:
            return ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return timezone.get_current_timezone()


def format_time(moment: datetime | None, zone: str | tzinfo | None = None) -> str:
    """``2026-12-03 14:05:09 CET``: ``moment`` as wall time in ``zone`` (a zone name, such as
    a schedule's, or a tzinfo; None or an unknown name: the active time zone), with the
    zone's abbreviation, which also tells the two passes of a repeated wall time apart."""
    if moment is None:
        return NONE
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    local = moment.astimezone(_zone(zone))
    return f"{local.strftime(TIME_SHAPE)} {local.tzname()}"


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


def as_value(text: str) -> Any:
    """The value ``text`` writes, when it is JSON or a Python literal (a result summary is
    the ``repr`` of what the job returned); ``None`` when it is neither, or is plain text."""
    text = text.strip()
    if not text or len(text) > MAX_PRETTY or text[0] not in "[{(":
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        # Literals only: nothing is evaluated. Deep nesting raises, and is shown as text.
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def pretty_json(text: str | None, *, empty: str = NONE) -> str:
    """A JSON (or Python literal) object or list indented in a block; other text as it is."""
    if not text:
        return empty
    value = as_value(text)
    if not isinstance(value, dict | list | tuple):
        return monospace(text, empty=empty)
    try:
        shown = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # keys JSON cannot hold (tuples...)
        return monospace(text, empty=empty)
    return monospace(shown, empty=empty)


_LITERAL = re.compile(r"``(.+?)``")


def doc_text(text: str | None, words: int | None = None) -> str:
    """A job's description as written in its docstring, for a page: escaped, with its
    ````literals```` as code, cut to ``words`` words if given."""
    text = text or ""
    if words is not None:
        text = Truncator(text).words(words)
    return mark_safe(_LITERAL.sub(r"<code>\1</code>", str(escape(text))))
