"""Progress and cancellation: a claimed attempt's job context reports to the run history
(``scheduler.runs.progress``), and its last report is written before its end.

Comes after ``outcome.Outcome`` in ``JOBS_TASK_MIDDLEWARE``: ``after_run`` goes in reverse
order, so the last report is flushed while the attempt still runs (and before a cancelled
attempt's job is recorded as stopped). Setting the control costs nothing: a job that never
reports or asks makes no query.
"""

from __future__ import annotations

from typing import Any

from jobs_catalog.middleware import RunInfo
from scheduler.runs.middleware.state import RunMiddleware, state_of
from scheduler.runs.progress import RunProgress


class ProgressControl(RunMiddleware):
    def before_run(self, run: RunInfo) -> None:
        state = state_of(run)
        if state.claimed is not None:  # nothing to report to otherwise
            run.context.control = RunProgress(state.claimed, state.redactor, self.clock)

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        context = run.context
        context.flush_progress()
        # A job that kept its context reports nowhere once its run is over.
        context.control = None
