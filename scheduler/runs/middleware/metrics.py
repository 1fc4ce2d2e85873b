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

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        state = state_of(run)
        if state.ended is None:
            return
        metrics.run_ended(run.job.name, state.ended, time.monotonic() - state.began)
        status = state.ended
        if status == JobRun.Status.RETRYING:
            metrics.RETRIES.labels(run.job.name).inc()
