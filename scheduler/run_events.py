"""Signals about runs, sent where the run history records them, for whoever wants to know
(alerting listens). A receiver that raises is logged and never affects the run.

- ``run_started(run)``: the worker marked ``run`` running (sent inside the transaction that
  did, so receivers defer side effects with ``transaction.on_commit``).
- ``run_finished(run, run_id, status)``: ``run`` got its final status for this attempt:
  succeeded, failed, retrying (another attempt follows), timed out, lost, cancelled, or
  skipped by the worker's overlap check. ``run_id`` and ``status`` cost nothing; ``run`` may
  be read from the database on first use (when the sender had only the id).
- ``runs_not_started(runs)``: beat recorded occurrences it will not run (missed while beat
  was down, skipped by the overlap policy); sent inside beat's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.dispatch import Signal
from django.utils.functional import SimpleLazyObject

from scheduler.models import JobRun

logger = logging.getLogger(__name__)

run_started = Signal()
run_finished = Signal()
runs_not_started = Signal()

#: The fields a receiver may read on a finished run (the heavy text stays in the database).
_FINISHED_FIELDS_DEFERRED = ("logs", "traceback", "result", "args")


def started(run: JobRun) -> None:
    _send(run_started, run=run)


def finished(run: JobRun | int, status: str | None = None) -> None:
    """Announce the end of ``run``: a row, or its id and new ``status`` (then the row is read
    only if a receiver needs it)."""
    if not run_finished.has_listeners(JobRun):
        return
    if isinstance(run, JobRun):
        _send(run_finished, run=run, run_id=run.pk, status=run.status)
        return
    run_id = run
    row = SimpleLazyObject(lambda: _load(run_id, status))
    _send(run_finished, run=row, run_id=run_id, status=status or row.status)


def _load(run_id: int, status: str | None) -> JobRun:
    found = (
        JobRun.objects.defer(*_FINISHED_FIELDS_DEFERRED)
        .select_related("schedule")
        .filter(pk=run_id)
        .first()
    )
    # Deleted meanwhile: a stand-in without a schedule, which nobody alerts on.
    return found or JobRun(pk=run_id, status=status or JobRun.Status.FAILED)


def not_started(runs: Iterable[JobRun]) -> None:
    """Announce the runs among ``runs`` that were recorded as missed or skipped."""
    chosen = [r for r in runs if r.status in (JobRun.Status.MISSED, JobRun.Status.SKIPPED)]
    if chosen:
        _send(runs_not_started, runs=chosen)


def _send(signal: Signal, **kwargs: object) -> None:
    for receiver, result in signal.send_robust(sender=JobRun, **kwargs):
        if isinstance(result, Exception):
            logger.error("run event receiver %r failed", receiver, exc_info=result)
