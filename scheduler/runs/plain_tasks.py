"""Run history through Celery's signals, in worker processes only (connected at worker_init):

- **Plain django-celery-beat entries** (any task that is not a catalog job, sent by beat with
  the headers of ``scheduler.runs.messages.attempt_headers``) have no middleware:
  ``task_prerun`` starts their attempt, ``task_failure`` keeps the error, ``task_postrun``
  ends it, with the pieces the catalog's middlewares are made of (``scheduler.runs.middleware``:
  the claim, the end, log capture, masking). A redelivery of an attempt still marked running
  (its worker died) records that attempt as lost and the rerun as a new attempt, unless the
  attempt still runs in this worker (``scheduler.runs.running_here``). Unlike catalog jobs,
  a duplicate delivery of a plain task cannot be dropped (a signal cannot stop a task), so
  it runs; it is logged, not recorded.
- **What only the worker's main process sees**: a job killed for exceeding its hard time
  limit (``task_failure`` with ``TimeLimitExceeded``, sent by ``Request.on_timeout``) is
  recorded as timed out; a worker lost without a redelivery (a task that does not reject on
  worker loss) as lost; a message naming a task this worker does not know (``task_unknown``:
  a raw PeriodicTask's typo, a job not installed here) or cannot read (``task_rejected``)
  fails its run with the reason, instead of leaving it queued.
- **Liveness**: the main process writes the worker's heartbeat (``scheduler.runs.heartbeats``)
  from worker start to a clean shutdown.

A plain task's start and end are written through a database outage as a catalog job's are
(``scheduler.runs.db_retry``), but a signal cannot stop a task: a plain task whose start cannot be
written within ``db_retry.START_RETRY_FOR`` runs unrecorded (logged).
"""

from __future__ import annotations

import logging
import os
import time
from functools import cache
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_rejected,
    task_unknown,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.db import connections

from jobs_catalog.retry import NO_RETRY
from jobs_catalog.tasks import CatalogTask
from scheduler import metrics
from scheduler.clock import Clock, get_clock
from scheduler.runs import db_retry, history_connection, recording, retries
from scheduler.runs import events as run_events
from scheduler.runs.heartbeats import Heartbeat
from scheduler.runs.messages import attempt_id_of
from scheduler.runs.middleware.claim import Delivery, Refused, claim
from scheduler.runs.middleware.logs import attach, detach
from scheduler.runs.middleware.outcome import failure_fields, write_end
from scheduler.runs.middleware.secrets import forget, redact_plain
from scheduler.runs.middleware.state import RunState, Start
from scheduler.runs.models import JobRun, attempts_of
from scheduler.runs.outbox import release_next_buffered
from scheduler.runs.redaction import summary
from scheduler.runs.time_limits import hard_time_limit

logger = logging.getLogger(__name__)
Status = JobRun.Status

#: Celery task id -> the plain task's attempt its message drives here (one at a time per
#: pool process).
_running: dict[str, RunState] = {}


@cache
def _clock() -> Clock:
    return get_clock()


#: This worker's heartbeat (its main process), from worker_ready to worker_shutdown.
_heartbeat: Heartbeat | None = None
_incarnation = None


@worker_init.connect(dispatch_uid="scheduler.runs.plain_tasks.connect")
def _on_worker_init(**kwargs: Any) -> None:
    global _incarnation
    # Before the pool runs anything: a run started earlier than this was another
    # incarnation's (a worker restarted under the same name).
    _incarnation = _clock().now()
    connect()
    history_connection.enable()


@worker_ready.connect(dispatch_uid="scheduler.runs.plain_tasks.heartbeat")
def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    global _heartbeat
    hostname = getattr(sender, "hostname", None)
    if hostname and _heartbeat is None:
        _heartbeat = Heartbeat(hostname, _clock(), started_at=_incarnation)
        _heartbeat.start()


@worker_shutdown.connect(dispatch_uid="scheduler.runs.plain_tasks.heartbeat_stop")
def _on_worker_shutdown(**kwargs: Any) -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None


@worker_process_shutdown.connect(dispatch_uid="scheduler.runs.plain_tasks.process_shutdown")
def _on_process_shutdown(**kwargs: Any) -> None:
    # A pool process ending (recycled, or the worker stopping): confirm what it sent
    # without waiting, and end its history session cleanly.
    history_connection.close()


def connect() -> None:
    """Connect the recording handlers (done in workers; tests call it directly)."""
    task_prerun.connect(on_prerun, dispatch_uid="scheduler.runs.plain_tasks.prerun")
    task_failure.connect(on_failure, dispatch_uid="scheduler.runs.plain_tasks.failure")
    task_postrun.connect(on_postrun, dispatch_uid="scheduler.runs.plain_tasks.postrun")
    task_postrun.connect(release_connections, dispatch_uid="scheduler.runs.plain_tasks.connections")
    task_postrun.connect(forget, dispatch_uid="scheduler.runs.plain_tasks.secrets")
    task_unknown.connect(on_unknown_task, dispatch_uid="scheduler.runs.plain_tasks.unknown")
    task_rejected.connect(on_rejected, dispatch_uid="scheduler.runs.plain_tasks.rejected")


def disconnect() -> None:
    task_prerun.disconnect(dispatch_uid="scheduler.runs.plain_tasks.prerun")
    task_failure.disconnect(dispatch_uid="scheduler.runs.plain_tasks.failure")
    task_postrun.disconnect(dispatch_uid="scheduler.runs.plain_tasks.postrun")
    task_postrun.disconnect(dispatch_uid="scheduler.runs.plain_tasks.connections")
    task_postrun.disconnect(dispatch_uid="scheduler.runs.plain_tasks.secrets")
    task_unknown.disconnect(dispatch_uid="scheduler.runs.plain_tasks.unknown")
    task_rejected.disconnect(dispatch_uid="scheduler.runs.plain_tasks.rejected")


def release_connections(sender: Any = None, **kwargs: Any) -> None:
    """After each task, hand back a connection a job left in a bad state (an error, an open
    transaction): the pool resets or replaces it. A healthy one is kept for the next task,
    so a run costs no pool check; Celery's own fixup would reconnect around every task
    (see CELERY_DB_REUSE_MAX). A connection that broke while idle is replaced when the next
    run starts (scheduler.runs.recording)."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.errors_occurred or conn.in_atomic_block or not conn.get_autocommit():
            conn.close()


# --- plain tasks ---------------------------------------------------------------------------
def on_prerun(sender: Any = None, task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    task = task or sender
    if task is None or isinstance(task, CatalogTask):
        return  # catalog jobs are recorded by their middleware
    request = task.request
    attempt_id = attempt_id_of(lambda name: _header(request, name))
    if attempt_id is None:
        return  # not sent by beat: not an occurrence
    delivery_info = request.delivery_info or {}
    state = RunState()
    redact_plain(state, kwargs.get("kwargs") or {})
    start = state.start = Start(
        now=_clock().now(),
        host=request.hostname or "",
        pid=os.getpid(),
        queue=delivery_info.get("routing_key") or "",
        params=state.params or {},
        args=list(kwargs.get("args") or []),
        run_max_attempts=None,
        job_max_attempts=1,  # the platform does not retry plain tasks
    )
    delivery = Delivery(
        start.host,
        redelivered=bool(delivery_info.get("redelivered")),
        retries=request.retries or 0,
        runs_anyway=True,
    )
    # The message also drives the reruns its redeliveries started: the latest attempt of
    # the occurrence it names is the one a redelivery finds.
    attempts = JobRun.objects.filter(attempts_of(attempt_id))

    def start_attempt(tries: int) -> recording.Claimed | Refused:
        state.claim_retried = tries > 1
        return claim(attempt_id, start, delivery, state, attempts=attempts)

    try:
        claimed = db_retry.until_written(
            db_retry.numbered(start_attempt),
            deadline=state.began + db_retry.START_RETRY_FOR,
            what=f"{task.name}'s start",
        )
    except db_retry.CONNECTION_ERRORS:
        logger.error(
            "%s[%s]: its start could not be written; it runs unrecorded", task.name, task_id
        )
        return
    if isinstance(claimed, Refused):
        logger.warning(
            "%s[%s]: %s; this delivery runs unrecorded (a signal cannot stop a plain task)",
            task.name,
            task_id,
            claimed.reason,
        )
        return
    state.claimed = claimed
    attach(state, (getattr(task.run, "__module__", None) or task.__module__,))
    _running[task_id] = state


def _header(request: Any, name: str) -> Any:
    # A worker exposes custom headers as request attributes; an eager apply() in headers.
    value = request.get(name)
    return value if value is not None else (request.headers or {}).get(name)


def on_failure(
    sender: Any = None,
    task_id: str = "",
    exception: BaseException | None = None,
    einfo: Any = None,
    **kwargs: Any,
) -> None:
    if isinstance(exception, TimeLimitExceeded):
        _record_in_parent(sender, task_id, exception, Status.TIMED_OUT)
        return
    if isinstance(exception, WorkerLostError):
        _record_in_parent(sender, task_id, exception, Status.LOST)
        return
    state = _running.get(task_id)
    if state is not None and exception is not None:
        state.error = exception
        state.traceback = str(einfo) if einfo is not None else ""


def on_postrun(
    sender: Any = None, task_id: str = "", retval: Any = None, state: str = "", **kwargs: Any
) -> None:
    attempt = _running.pop(task_id, None)
    if attempt is None:
        return
    detach(attempt)
    now = _clock().now()
    limit = hard_time_limit(sender.app, sender.name) if sender is not None else 0.0

    def end(tries: int) -> None:
        attempt.end_retried = tries > 1
        _record_end(attempt, now, retval, state)

    db_retry.until_written(
        db_retry.numbered(end),
        deadline=attempt.began + limit - db_retry.END_RETRY_MARGIN,
        what=f"the end of run {attempt.claimed.id if attempt.claimed else None}",
    )
    if attempt.ended is not None and sender is not None:
        metrics.run_ended(sender.name, attempt.ended, time.monotonic() - attempt.began)


def _record_end(attempt: RunState, now: Any, retval: Any, state: str) -> None:
    logs = attempt.logs
    if state == "SUCCESS":
        result = summary(retval, attempt.redactor)
        write_end(attempt, status=Status.SUCCEEDED, now=now, result=result, logs=logs, wait=False)
        return
    if state == "RETRY":
        note = "the task asked to retry"
        write_end(attempt, status=Status.RETRYING, now=now, logs=logs, note=note, wait=True)
        return
    exc = attempt.error if attempt.error is not None else retval
    error = failure_fields(
        exc, attempt.redactor, traceback_text=attempt.traceback, type_name=_short_name
    )
    # One attempt, as the platform does not retry plain tasks: timed out or failed.
    status = retries.outcome(exc, NO_RETRY, 1, NO_RETRY.max_attempts)
    write_end(attempt, status=status, now=now, logs=logs, wait=False, **error)


def _short_name(exc: Any) -> str:
    # What plain tasks have always recorded: the class's name alone.
    return type(exc).__name__


# --- the worker's main process ----------------------------------------------------------------
def _record_in_parent(task: Any, task_id: str, exc: BaseException, status: str) -> None:
    if status == Status.TIMED_OUT:
        limit = exc.args[0] if exc.args else getattr(task, "time_limit", None)
        message = (
            f"hard time limit ({limit}s) exceeded: the worker killed the process running the "
            "job, so its log lines were not kept"
        )
    else:
        message = f"the worker process running the job died: {exc}"
    try:
        ended = recording.finish_by_task_id(
            task_id,
            status=status,
            now=_clock().now(),
            error_type=type(exc).__name__,
            error_message=message,
            include_reruns=not isinstance(task, CatalogTask),
        )
        if ended is not None and task is not None:
            metrics.run_ended(getattr(task, "name", "") or "unknown", status)
    except Exception:  # the worker's main loop must go on
        logger.exception("run history: could not record %s for task %s", status, task_id)
        return
    try:
        if ended is not None and ended[1] is not None:
            release_next_buffered(ended[0])
            if status == Status.TIMED_OUT:  # final (a lost one is redelivered): alerting
                run_events.finished(ended[0], status, ended[1])
    finally:
        _close_inheritable()


def on_unknown_task(sender: Any = None, message: Any = None, name: str = "", **kwargs: Any) -> None:
    """A message of a task no one here knows: its run fails with the reason at once (no
    worker of the same code would run it either)."""
    _fail_unstarted(message, "NotRegistered", f"no worker knows task {name!r}")


def on_rejected(sender: Any = None, message: Any = None, exc: Any = None, **kwargs: Any) -> None:
    """A message the worker cannot read (an unknown format, an invalid task)."""
    reason = f": {exc}" if exc is not None else ""
    _fail_unstarted(message, "MessageRejected", f"the worker rejected the message{reason}")


def _fail_unstarted(message: Any, error_type: str, error_message: str) -> None:
    headers = getattr(message, "headers", None) or {}
    run_id = attempt_id_of(headers.get)
    if run_id is None:
        return  # not an occurrence: nothing recorded it
    try:
        ended = recording.fail_unstarted(
            run_id, now=_clock().now(), error_type=error_type, error_message=error_message
        )
        if ended is not None:
            logger.error("run %s failed: %s", run_id, error_message)
            run_events.finished(ended[0], Status.FAILED, ended[1])  # alerting listens
    except Exception:  # the worker's main loop must go on
        logger.exception("run history: could not record run %s failed", run_id)
    finally:
        _close_inheritable()


def _close_inheritable() -> None:
    """The main process forks new pool processes: it keeps no database connection open for
    them to inherit (a child closing an inherited one would end this process's session)."""
    for conn in connections.all(initialized_only=True):
        conn.close()
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None and conn.settings_dict.get("OPTIONS", {}).get("pool"):
            close_pool()
