"""A running job's progress and its cancellation, stored with its attempt: the run history's
:class:`~jobs_catalog.context.RunControl`.

The job's context throttles the reports (``jobs_catalog.context``): at most a few writes a
second, one statement each (``recording.write_progress``: on a worker, sent without waiting
for the reply), and the last report once more when the run ends. A job that never reports
or never asks costs nothing. A report never fails the job: a database outage only loses it.

Stored as ``JobRun.progress``: ``{"done", "total", "message", "at"}``, the message with the
run's secret values masked.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.db import DatabaseError

from jobs_catalog.context import Progress
from scheduler.clock import Clock
from scheduler.runs import db_retry, recording
from scheduler.runs.recording import Claimed
from scheduler.runs.redaction import Redactor

logger = logging.getLogger(__name__)
#: What a lost report or a failed look-up may raise: the job goes on.
FAILURES = (DatabaseError, psycopg.Error, *db_retry.CONNECTION_ERRORS)


def stored(progress: Progress, redactor: Redactor, clock: Clock) -> dict[str, Any]:
    """``progress`` as ``JobRun.progress`` keeps it."""
    return {
        "done": progress.done,
        "total": progress.total,
        "message": redactor.text(progress.message),
        "at": clock.now().isoformat(),
    }


class RunProgress:
    """Reports and cancellation of the attempt ``claimed``, which this process runs."""

    def __init__(self, claimed: Claimed, redactor: Redactor, clock: Clock):
        self.claimed = claimed
        self.redactor = redactor
        self.clock = clock
        self._complained = False

    def report(self, progress: Progress) -> None:
        try:
            recording.write_progress(
                self.claimed.id,
                task_id=self.claimed.task_id,
                progress=stored(progress, self.redactor, self.clock),
            )
        except FAILURES as exc:
            self._complain("its progress was not stored", exc)

    def is_cancelled(self) -> bool:
        try:
            return recording.is_cancelled(self.claimed.id, task_id=self.claimed.task_id)
        except FAILURES as exc:
            self._complain("whether it was cancelled could not be read", exc)
            return False

    def _complain(self, what: str, exc: BaseException) -> None:
        # Once a run: a job reports many times a second.
        if not self._complained:
            self._complained = True
            run = self.claimed.id or self.claimed.task_id
            logger.warning("run %s: %s (%s: %s)", run, what, type(exc).__name__, exc)
