"""Celery's line for a task that succeeded ("Task x[id] succeeded in 0.1s: <return value>")
carries the whole return value, up to a kilobyte of its ``repr`` (a catalog job's report:
every file it removed...). ``BoundTaskSuccess``, a filter on Celery's ``celery.app.trace``
logger (see ``LOGGING`` in the settings), keeps it to one line of at most
``MAX_LOGGED_RESULT`` characters of the value; the run history keeps the result itself.

Free of Django: logging is configured before Django's apps are loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from scheduler.runs import log_redaction

#: Characters of a return value (and of a task's arguments) a success line keeps.
MAX_LOGGED_RESULT = 200
#: What Celery's success line gives as ``extra={"data": ...}`` besides the message's values.
_BOUNDED_DATA = ("return_value", "args", "kwargs")


def one_line(value: Any, limit: int = MAX_LOGGED_RESULT) -> str:
    """``value`` as one line (line breaks escaped) of at most ``limit`` characters, and how
    long it was when cut. A running job's secrets are masked before the cut, so no part of
    one is left to the filter that masks them."""
    text = value if isinstance(value, str) else repr(value)
    redactor = log_redaction.current()
    if redactor is not None:
        text = redactor.text(text)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class BoundTaskSuccess(logging.Filter):
    """Bounds the return value in Celery's success line, and in the ``data`` it passes as
    extra (which a JSON log line writes out). Other records pass unchanged."""

    # One is enough on a logger: configuring logging again (dictConfig adds a logger's
    # filters without removing those it has) must not cut an already cut value again.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoundTaskSuccess)

    def __hash__(self) -> int:
        return hash(BoundTaskSuccess)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping) and "return_value" in args:
            record.args = {**args, "return_value": one_line(args["return_value"])}
        data = getattr(record, "data", None)
        if isinstance(data, Mapping) and "return_value" in data:
            record.data = {
                **data,
                **{key: one_line(data[key]) for key in _BOUNDED_DATA if key in data},
            }
        return True
