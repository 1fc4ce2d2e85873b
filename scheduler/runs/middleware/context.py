"""Log context: every line logged during a run carries the run's ids
(``scheduler.runs.log_context``)."""

from __future__ import annotations

from typing import Any

from jobs_catalog.middleware import RunInfo
from scheduler.runs import log_context
from scheduler.runs.messages import attempt_id_of
from scheduler.runs.middleware.state import RunMiddleware
from scheduler.schedules.periodic import SCHEDULE_HEADER


class LogContext(RunMiddleware):
    """Outermost, so the other middlewares' lines carry the run's ids too. The ids come from
    the message's headers: no query is made for them (a direct call has none until it is
    recorded, and is known by its task id)."""

    def before_run(self, run: RunInfo) -> None:
        log_context.bind(
            run_id=attempt_id_of(run.header),
            schedule_id=run.header(SCHEDULE_HEADER),
            job=run.job.name,
            task_id=run.task_id,
        )

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        log_context.clear()
