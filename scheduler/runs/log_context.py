"""Which run a log line was written in: the attempt's id, its schedule, its job and its Celery
task id, put on every record logged while the run is in progress (``RunContextFilter``), so a
JSON log line (``LOG_FORMAT=json``) can be found by the run it belongs to."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

#: The fields every record of the run gets; None outside a run.
_current: ContextVar[dict[str, Any] | None] = ContextVar("scheduler_run_log_context", default=None)

FIELDS = ("run_id", "schedule_id", "job", "task_id")


def bind(**fields: Any) -> None:
    """From now on (in this thread or task), records carry ``fields`` (names of FIELDS)."""
    _current.set({name: fields.get(name) for name in FIELDS})


def clear() -> None:
    _current.set(None)


class RunContextFilter(logging.Filter):
    """Adds the run's fields to each record logged during a run (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current.get()
        if fields is not None:
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True
