"""Signals about runs, sent where the run history records them, for whoever wants to know
(alerting listens). A receiver that raises is logged and never affects the run.

- ``run_started(run)``: the worker marked ``run`` running (sent inside the transaction that
  did, so receivers defer side effects with ``transaction.on_commit``).
- ``run_finished(run)``: ``run`` got its final status for this attempt: succeeded, failed,
  retrying (another attempt follows), timed out, lost, cancelled, or skipped by the worker's
  overlap check.
- ``runs_not_started(runs)``: beat recorded occurrences it will not run (missed while beat
  was down, skipped by the overlap policy); sent inside beat's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.dispatch import Signal

from scheduler.models import JobRun

logger = logging.getLogger(__name__)

run_started = Signal()
run_finished = Signal()
runs_not_started = Signal()

#: The fields a receiver may read on a finished run (the heavy text stays in the database).
_FINISHED_FIELDS_DEFERRED = ("logs", "traceback", "result", "args")


def started(run: JobRun) -> None:
    _send(run_started, run=run)


def finished(run: JobRun | int) -> None:
    """Announce the end of ``run`` (a row, or its id: then it is read once, if anyone
    listens)."""
    if not run_finished.has_listeners(JobRun):
        return
    if isinstance(run, int):
        try:
            loaded = (
                JobRun.objects.defer(*_FINISHED_FIELDS_DEFERRED)
                .select_related("schedule")
                .filter(pk=run)
                .first()
            )
        except Exception:  # never let bookkeeping of the bookkeeping fail a run
            logger.exception("run %s: could not read it to announce its end", run)
            return
        if loaded is None:
            return
        run = loaded
    _send(run_finished, run=run)


def not_started(runs: Iterable[JobRun]) -> None:
    """Announce the runs among ``runs`` that were recorded as missed or skipped."""
    chosen = [r for r in runs if r.status in (JobRun.Status.MISSED, JobRun.Status.SKIPPED)]
    if chosen:
        _send(runs_not_started, runs=chosen)


def _send(signal: Signal, **kwargs: object) -> None:
    for receiver, result in signal.send_robust(sender=JobRun, **kwargs):
        if isinstance(result, Exception):
            logger.error("run event receiver %r failed", receiver, exc_info=result)
