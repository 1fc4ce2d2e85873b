"""The ``@job`` decorator: how a job author adds a job to the catalog."""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from jobs_catalog.definition import Job
from jobs_catalog.registry import Registry
from jobs_catalog.registry import registry as default_registry
from jobs_catalog.retry import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])

#: Set by discovery while it imports a plugin, so each job knows where it came from and
#: lands in the registry being filled.
current_source: contextvars.ContextVar[str] = contextvars.ContextVar("job_source", default="")
current_registry: contextvars.ContextVar[Registry | None] = contextvars.ContextVar(
    "job_registry", default=None
)


def job(
    name: str,
    *,
    title: str | None = None,
    description: str | None = None,
    retry: RetryPolicy | None = None,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    queue: str | None = None,
    cancellable: bool = False,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Declare a catalog job::

        @job("acme.send_report", title="Send the daily report",
             retry=RetryPolicy(max_attempts=5), soft_time_limit=60, time_limit=90)
        def send_report(ctx: JobContext, recipients: list[str], day: str = "yesterday"):
            ctx.logger.info("sending to %s", recipients)
            ...

    ``cancellable=True`` says the job checks ``ctx.cancelled`` (or calls
    ``ctx.stop_if_cancelled()``) between chunks: a cancel of its running run then lets it
    stop by itself instead of killing its process.

    ``name`` is stable: schedules refer to it, so do not rename a job in use. ``description``
    defaults to the function's docstring. The function is returned unchanged, so it can be
    called directly in its author's unit tests.
    """

    def decorate(func: F) -> F:
        doc = inspect.getdoc(func) or ""
        definition = Job(
            name=name,
            func=func,
            title=title or (doc.splitlines()[0] if doc else name),
            description=description if description is not None else doc,
            retry=retry or RetryPolicy(),
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            queue=queue,
            cancellable=cancellable,
            source=current_source.get() or f"module {func.__module__}",
        )
        target = registry if registry is not None else current_registry.get()
        (target if target is not None else default_registry).register(definition)
        func.job = definition  # type: ignore[attr-defined]
        return func

    return decorate
