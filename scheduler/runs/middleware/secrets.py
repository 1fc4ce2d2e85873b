"""Secrets: a run's secret parameter values are masked in everything the run history keeps
(its parameters, result, error, traceback and log lines) and in what the process logs
(``scheduler.runs.log_redaction``) while the run lasts.

The job itself gets them in clear (``Job.call`` opens sealed values); Celery's own line
about the task's end is logged after the middleware is done, so the process's logs stay
masked until ``task_postrun`` (:func:`forget`, connected by ``scheduler.runs.plain_tasks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs_catalog.middleware import RunInfo
from scheduler.runs import log_redaction
from scheduler.runs.middleware.state import RunMiddleware, RunState, state_of
from scheduler.runs.redaction import NO_SECRETS, Redactor, mask_plain_kwargs


class Redaction(RunMiddleware):
    def before_run(self, run: RunInfo) -> None:
        job = run.job
        state = state_of(run)
        state.redactor = (
            Redactor.for_params(run.params, job.secret_fields) if job.secret_fields else NO_SECRETS
        )
        state.params = job.mask(run.params)
        log_redaction.use(state.redactor)


def redact_plain(state: RunState, kwargs: Mapping[str, Any]) -> None:
    """A plain task declares no secret parameters: those with secret-looking names are
    masked in what is kept; no value is known to mask in text."""
    state.redactor = NO_SECRETS
    state.params = mask_plain_kwargs(kwargs)


def forget(**kwargs: Any) -> None:
    """The task is over, Celery's own log lines about it included: stop masking its
    secrets (a ``task_postrun`` receiver)."""
    log_redaction.use(None)
