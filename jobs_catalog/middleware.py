"""Hooks around every catalog run, in the spirit of Dramatiq's middleware: each one small,
with one concern (the scheduler records the run history, applies retries and the overlap
policy).

Enabled by dotted path in ``settings.JOBS_TASK_MIDDLEWARE``, in order; ``after_run`` is
called in reverse order, for every middleware whose ``before_run`` completed. The same chain
runs for a Celery delivery and for ``manage.py jobs run``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from jobs_catalog.context import JobContext
from jobs_catalog.definition import Job

logger = logging.getLogger(__name__)


class SkipRun(Exception):  # noqa: N818 - a signal, not a failure
    """Raised by ``before_run``: do not run the job (a duplicate delivery, an overlap...).
    The message is acknowledged; ``reason`` is logged."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class RunInfo:
    """One run of a job, as middleware sees it.

    ``params`` are the parameters as received (not yet validated; secret values included,
    sealed or clear as the sender sent them, opened only by ``job.call``: mask them with
    ``job.mask`` before storing or showing them). ``task_id`` is the Celery
    task id, None for a run outside Celery (the command line). ``redelivered`` is the
    broker's word that an earlier delivery of this very message was not acknowledged.
    ``state`` is scratch space middleware may keep for ``after_run``.
    """

    job: Job
    params: Mapping[str, Any]
    context: JobContext
    task_id: str | None = None
    hostname: str = ""
    queue: str = ""
    redelivered: bool = False
    #: The Celery request (message headers are its attributes), None outside Celery.
    request: Any = None
    state: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> Any:
        """A message header, or None (Celery exposes custom headers as request attributes)."""
        value = self.request.get(name) if self.request is not None else None
        return value if value is not None else self.context.headers.get(name)


class Middleware:
    def before_run(self, run: RunInfo) -> None:
        """Called before the job runs; raise :class:`SkipRun` to not run it."""

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        """Called after the job returned (``exc`` is None) or raised."""


@cache
def configured_middleware() -> tuple[Middleware, ...]:
    paths = getattr(settings, "JOBS_TASK_MIDDLEWARE", ())
    return tuple(import_string(path)() for path in paths)


def run_with_middleware(run: RunInfo, middleware: Sequence[Middleware] | None = None) -> Any:
    """Run ``run.job`` inside the middleware chain. Returns None when a middleware skipped
    the run; re-raises what the job raised, after every ``after_run``."""
    chain = configured_middleware() if middleware is None else middleware
    entered: list[Middleware] = []
    try:
        for item in chain:
            item.before_run(run)
            entered.append(item)
    except SkipRun as skip:
        logger.info("%s[%s] not run: %s", run.job.name, run.task_id, skip.reason)
        for item in reversed(entered):
            item.after_run(run, None, skip)
        return None
    try:
        result = run.job.call(run.params, run.context)
    except BaseException as exc:
        for item in reversed(entered):
            item.after_run(run, None, exc)
        raise
    for item in reversed(entered):
        item.after_run(run, result, None)
    return result
