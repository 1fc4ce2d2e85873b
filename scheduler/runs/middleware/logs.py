"""Log capture: the job's log lines, kept with its attempt (``scheduler.runs.capture``);
secret values masked on the console too while it runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobs_catalog.middleware import RunInfo
from scheduler.runs.capture import LogCapture
from scheduler.runs.middleware.state import RunMiddleware, RunState, state_of


class CaptureLogs(RunMiddleware):
    """Innermost: it holds the job's lines only, and nothing that could fail comes after
    it (its handler would stay attached)."""

    def before_run(self, run: RunInfo) -> None:
        state = state_of(run)
        if state.claimed is not None:  # nothing to keep them with otherwise
            attach(state, (run.context.logger.name, run.job.module))

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        detach(state_of(run))


def attach(state: RunState, loggers: Iterable[str]) -> None:
    """Capture what ``loggers`` log from now on."""
    state.capture = LogCapture().attach(loggers, state.redactor)


def detach(state: RunState) -> None:
    """Stop capturing; the lines are kept in ``state.logs``."""
    capture, state.capture = state.capture, None
    if capture is not None:
        capture.detach()
        state.logs = capture.text()
