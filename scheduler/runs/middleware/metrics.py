"""Run metrics: each attempt this worker ends, counted by job and status, with its duration
(``scheduler.metrics``)."""

from __future__ import annotations

import time
from typing import Any

from jobs_catalog.middleware import RunInfo
from scheduler import metrics
from scheduler.runs.middleware.state import RunMiddleware, state_of
from scheduler.runs.models import JobRun


class RunMetrics(RunMiddleware):
    """Outside the outcome, so it reads the status the end recorded; a delivery the claim
    dropped (a duplicate, a run cancelled meanwhile) ended nothing and counts nothing."""

    def before_run(self, run: RunInfo) -> None:
        run.state[__name__] = time.monotonic()

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        status = state_of(run).ended
        if status is None:
            return
        began = run.state.get(__name__)
        duration = time.monotonic() - began if began is not None else None
        metrics.run_ended(run.job.name, status, duration)
        if status == JobRun.Status.RETRYING:
            metrics.RETRIES.labels(run.job.name).inc()
