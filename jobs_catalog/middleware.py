"""Hooks around every catalog run, in the spirit of Dramatiq's middleware: each one small,
with one concern (the scheduler adds run bookkeeping; later layers add history, retries).

Enabled by dotted path in ``settings.JOBS_TASK_MIDDLEWARE``, in order; ``after_run`` is
called in reverse order, for every middleware whose ``before_run`` completed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from jobs_catalog.context import JobContext


class SkipRun(Exception):  # noqa: N818 - a signal, not a failure
    """Raised by ``before_run``: do not run the job (a duplicate delivery, an overlap...).
    The message is acknowledged; ``reason`` is logged."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class Middleware:
    def before_run(self, task: Any, context: JobContext) -> None:
        """Called before the job runs; raise :class:`SkipRun` to not run it."""

    def after_run(
        self, task: Any, context: JobContext, result: Any, exc: BaseException | None
    ) -> None:
        """Called after the job returned (``exc`` is None) or raised."""


@cache
def configured_middleware() -> tuple[Middleware, ...]:
    paths = getattr(settings, "JOBS_TASK_MIDDLEWARE", ())
    return tuple(import_string(path)() for path in paths)
