"""Signals about runs, sent where the run history records them, for whoever wants to know
(alerting listens). A receiver that raises is logged and never affects the run.

- ``run_started(run, run_id, schedule_id, task_name)``: the worker marked the attempt
  ``run_id`` running.
- ``run_finished(run, run_id, schedule_id, status, facts)``: the attempt got its final status:
  succeeded, failed, retrying (another attempt follows), timed out, lost, cancelled, or
  skipped by the worker's overlap check.
- ``runs_not_started(runs)``: beat recorded occurrences it will not run (missed while beat
  was down, skipped by the overlap policy); sent inside beat's transaction.

``facts`` holds what listeners asked to learn at every start (:func:`read_at_start`), when the
sender knows it (the worker does), else is empty.

``run_id``, ``schedule_id``, ``status`` and ``task_name`` cost nothing. ``run`` is the row,
read from the database on first use (a worker may still have its end in flight on its own
connection: that is settled first), so a receiver that needs only the ids reads nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.dispatch import Signal
from django.utils.functional import SimpleLazyObject

from scheduler.runs import recording
from scheduler.runs.models import JobRun

logger = logging.getLogger(__name__)

run_started = Signal()
run_finished = Signal()
runs_not_started = Signal()

#: The fields a receiver may read on a finished run (the heavy text stays in the database).
_FINISHED_FIELDS_DEFERRED = ("logs", "traceback", "result", "args")


def read_at_start(name: str, sql: str) -> None:
    """Have the worker read ``sql`` (an SQL expression over the run's row, ``{run}`` naming
    its table) when it starts an attempt, in the statement that starts it, and hand the value
    on as ``facts[name]`` with the attempt's end: a fact a listener needs at every end, for
    no query of its own."""
    recording.add_claim_fact(name, sql)


def read_now(sql: str, values: list[Any]) -> tuple | None:
    """The first row of ``sql``, read now, for a receiver that was handed no fact read at the
    start (:func:`read_at_start`): on a worker's own connection when it has one, behind what
    the worker sent there without waiting (so it sees it, in the same round trip)."""
    return recording.read(sql, values)


def started(run_id: int | None, schedule_id: int | None, task_name: str) -> None:
    """Announce that the attempt ``run_id`` is running (``None`` while a direct call's
    insert is in flight: such a run has no schedule)."""
    if not run_started.has_listeners(JobRun) or run_id is None:
        return
    row = SimpleLazyObject(lambda: _load(run_id, JobRun.Status.RUNNING))
    _send(run_started, run=row, run_id=run_id, schedule_id=schedule_id, task_name=task_name)


def finished(
    run: JobRun | int,
    status: str | None = None,
    schedule_id: int | None = None,
    *,
    facts: Mapping[str, Any] | None = None,
) -> None:
    """Announce the end of ``run``: a row, or its id with its new ``status`` and its
    ``schedule_id`` (then the row is read only if a receiver needs it), and the ``facts``
    read at its start when the sender has them."""
    if not run_finished.has_listeners(JobRun):
        return
    if isinstance(run, JobRun):
        _send(
            run_finished,
            run=run,
            run_id=run.pk,
            schedule_id=run.schedule_id,
            status=run.status,
            facts=facts or {},
        )
        return
    run_id = run
    row = SimpleLazyObject(lambda: _load(run_id, status))
    _send(
        run_finished,
        run=row,
        run_id=run_id,
        schedule_id=schedule_id,
        status=status or row.status,
        facts=facts or {},
    )


def _load(run_id: int, status: str | None) -> JobRun:
    recording.settle()  # the worker's own connection may hold the end in flight
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
