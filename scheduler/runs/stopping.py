"""How the workers stop the job of a run cancelled while it runs.

The cancel (``scheduler.runs.actions.cancel_run``) records the run cancelled, then
broadcasts :data:`STOP_COMMAND` with the run's Celery task id. Each worker's main process
answers it (a remote control command, registered when this module is imported):

- every worker remembers the id as revoked, so a later delivery of it is dropped;
- the worker running a job that stops by itself (``@job(cancellable=True)``) leaves it to
  see ``ctx.cancelled`` and stop between chunks; if it is still running
  ``settings.JOBS_CANCEL_GRACE`` seconds later, its process is terminated (SIGTERM);
- the worker running any other job terminates it at once (Celery's revoke).

A pool process leaves through ``SystemExit`` when terminated, so the run history still keeps
the job's log lines and last progress with the cancelled attempt, as it does for a job that
stopped by itself (``scheduler.runs.middleware.outcome``); only a job killed harder (its
hard time limit) loses them.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.worker import state as worker_state
from celery.worker.control import control_command, ok, revoke
from django.conf import settings

logger = logging.getLogger(__name__)

STOP_COMMAND = "stop_cancelled_run"
SIGNAL = "SIGTERM"


def tell_workers(app: Celery, task_id: str) -> None:
    """Ask every worker to stop the job of the cancelled run whose task id is ``task_id``."""
    app.control.broadcast(STOP_COMMAND, arguments={"task_id": task_id})


def stops_by_itself(app: Celery, request: Any) -> bool:
    """Whether the job a worker's ``request`` runs checks for a cancel (``cancellable``)."""
    task = app.tasks.get(request.name)
    job = getattr(task, "job", None)
    return bool(getattr(job, "cancellable", False))


@control_command(args=[("task_id", str)], signature="<task_id>")
def stop_cancelled_run(state: Any, task_id: str, **kwargs: Any) -> dict:
    """Stop the job of a cancelled run: at once, or after JOBS_CANCEL_GRACE seconds if it
    stops by itself and has not."""
    request = worker_state.requests.get(task_id)
    if request is None or not stops_by_itself(state.app, request):
        return revoke(state, task_id, terminate=True, signal=SIGNAL)
    revoke(state, task_id)  # only remembered: the job goes on to its next check
    grace = float(settings.JOBS_CANCEL_GRACE)
    logger.info(
        "%s[%s] cancelled: the job stops by itself, or is terminated in %gs",
        request.name,
        task_id,
        grace,
    )
    state.consumer.timer.call_after(grace, _terminate_if_running, (state, task_id, grace))
    return ok(f"{task_id}: stops by itself within {grace:g}s")


def _terminate_if_running(state: Any, task_id: str, grace: float) -> None:
    request = worker_state.requests.get(task_id)
    if request is None or request not in worker_state.active_requests:
        return  # it stopped
    logger.warning("Terminating %s: it did not stop within %gs of its cancel", task_id, grace)
    request.terminate(state.consumer.pool, signal=SIGNAL)
