"""Keep a running job's secret parameter values out of the process's logs and out of what
sentry-sdk reports, not only out of the run history.

The worker's middleware makes the run's redactor current for as long as the run lasts in
its process (Celery's own "Task ... raised" line, logged after the job returned, included):
``SecretFilter`` on a logging handler masks those values in each record it passes, and
``scrub_sentry_event`` (sentry-sdk's ``before_send``) in each event, exception messages and
local variables included. Outside a run nothing is changed.

Free of Django and of the catalog: logging is configured, and sentry-sdk set up, before
Django's apps are loaded.
"""

from __future__ import annotations

import logging
import traceback
from contextvars import ContextVar
from typing import Any, Protocol


class _Redacts(Protocol):
    def text(self, text: str) -> str: ...

    def __bool__(self) -> bool: ...


_current: ContextVar[_Redacts | None] = ContextVar("running_job_redactor", default=None)


def use(redactor: _Redacts | None) -> None:
    """Make ``redactor`` the current run's (None: no run)."""
    _current.set(redactor if redactor else None)


def current() -> _Redacts | None:
    return _current.get()


#: A record's own attributes; any other was given as ``extra`` (Celery puts a task's return
#: value and arguments there), and a JSON formatter writes it out.
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class SecretFilter(logging.Filter):
    """Masks the current run's secret values in a record: its message, its traceback
    (formatted here, since a formatter would format it again from the exception) and the
    values given as ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = _current.get()
        if redactor is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logging's to report, not ours
            return True
        record.msg, record.args = redactor.text(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _RECORD_FIELDS:
                record.__dict__[name] = scrub(value, redactor)
        return True


def scrub(value: Any, redactor: _Redacts) -> Any:
    """``value`` with the secrets replaced in every string it holds (keys included)."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {scrub(k, redactor): scrub(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, redactor) for v in value)
    return value


def scrub_sentry_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """sentry-sdk's ``before_send``: an event raised while a job runs (its Celery
    integration reports the job's exception, with the task's arguments and the frames'
    local variables) goes out with the job's secret values masked."""
    redactor = _current.get()
    return scrub(event, redactor) if redactor is not None else event
