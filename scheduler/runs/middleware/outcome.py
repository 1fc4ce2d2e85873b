"""The outcome: how a claimed attempt ended, and what follows.

At the end: status, duration, a bounded result or error, the job's log lines, secrets
masked; a retryable failure schedules the next attempt (``scheduler.runs.retries``),
published through the outbox with its backoff as a countdown; once the occurrence is over,
the schedule's buffered occurrence (if any) is released. The run events
(``scheduler.runs.events``) announce the start and every end: alerting listens.

Through a database outage (``scheduler.runs.db_retry``) an end is tried again until it is
written, up to just before the job's hard time limit, before the message is acknowledged (a
job that succeeded is never taken for lost and run again).

A cancelled run ends as cancelled, never retried. The cancel recorded the end and announced
it; once the job is over (it saw ``ctx.cancelled`` and returned or raised ``JobCancelled``,
finished without looking, or its process is being terminated: ``SystemExit``) the worker
keeps its log lines with the attempt (its last progress is flushed before), announces
nothing more and releases a buffered occurrence. A job that cancels its own run (raises
``JobCancelled`` uncancelled) gets its end recorded and announced here.

Plain django-celery-beat tasks record their end with the same pieces
(``scheduler.runs.plain_tasks``): they are neither retried by the platform nor guarded by an
overlap policy.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from jobs_catalog.errors import JobCancelled
from jobs_catalog.middleware import RunInfo, SkipRun
from scheduler.policies.retry import SETTINGS, layer_name
from scheduler.runs import db_retry, recording, retries
from scheduler.runs import events as run_events
from scheduler.runs.middleware.claim import publish_attempt
from scheduler.runs.middleware.state import RunMiddleware, RunState, state_of
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import release_next_buffered
from scheduler.runs.recording import Claimed
from scheduler.runs.redaction import MAX_ERROR_MESSAGE, MAX_TRACEBACK, Redactor, head, summary, tail
from scheduler.runs.time_limits import job_time_limits
from scheduler.schedules.models import Schedule

logger = logging.getLogger(__name__)
Status = JobRun.Status


class Outcome(RunMiddleware):
    """Records the end of the attempt ``claim.Claim`` claimed; announces its start."""

    def before_run(self, run: RunInfo) -> None:
        claimed = state_of(run).claimed
        if claimed is not None:  # alerting listens
            run_events.started(claimed.id, claimed.schedule_id, run.job.name)

    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        state = state_of(run)
        claimed = state.claimed
        if claimed is None:
            return
        now = self.clock.now()
        _soft, hard = job_time_limits(run.job)

        def end(tries: int) -> None:
            state.end_retried = tries > 1
            self._end(run, state, claimed, now, result, exc)

        db_retry.until_written(
            db_retry.numbered(end),
            deadline=state.began + hard - db_retry.END_RETRY_MARGIN,
            what=f"the end of {run.job.name} (run {claimed.id or claimed.task_id})",
        )

    def _end(
        self,
        run: RunInfo,
        state: RunState,
        claimed: Claimed,
        now: datetime,
        result: Any,
        exc: BaseException | None,
    ) -> None:
        if isinstance(exc, SkipRun):  # a later middleware decided not to run it
            if recording.finish(
                claimed.id,
                task_id=claimed.task_id,
                status=Status.SKIPPED,
                now=now,
                note=exc.reason,
            ):
                state.ended = Status.SKIPPED
            return
        redactor = state.redactor
        logs = redactor.text(state.logs)
        if isinstance(exc, JobCancelled) or run.context.cancel_seen:
            self._cancelled(state, claimed, now, logs, exc)
            return
        # Unless its schedule waits on it, nothing depends on the end being written: the
        # worker sends it without waiting for the reply. But a run may have been cancelled
        # while it ended (a cancellable job's), or be ending because it was (its process
        # terminated: SystemExit): that end must know whether it was written.
        terminated = isinstance(exc, SystemExit)
        maybe_cancelled = run.job.cancellable or terminated
        wait = state.guarded or maybe_cancelled
        if exc is None:
            result_text = summary(result, redactor)
            if write_end(
                state, status=Status.SUCCEEDED, now=now, result=result_text, logs=logs, wait=wait
            ):
                self._occurrence_over(state, claimed, Status.SUCCEEDED)
        else:
            error = {**failure_fields(exc, redactor), "logs": logs}
            status = retries.outcome(exc, run.job.retry, claimed.attempt, claimed.max_attempts)
            if status == Status.RETRYING:
                self._retry(run, state, claimed, now, error)
            elif write_end(state, status=status, now=now, wait=wait, **error):
                self._occurrence_over(state, claimed, status)
        if state.ended is None and maybe_cancelled:
            self._kept_after_cancel(state, claimed, now, logs, terminated=terminated)

    def _cancelled(
        self,
        state: RunState,
        claimed: Claimed,
        now: datetime,
        logs: str,
        exc: BaseException | None,
    ) -> None:
        """The job stopped on a cancel: the operator's (the attempt is cancelled already),
        or its own (it raised ``JobCancelled`` while its attempt ran)."""
        reason = head(state.redactor.text(str(exc)), 200) if isinstance(exc, JobCancelled) else ""
        note = f"Cancelled by the job{f': {reason}' if reason else ''}."
        if write_end(state, status=Status.CANCELLED, now=now, logs=logs, note=note, wait=True):
            self._occurrence_over(state, claimed, Status.CANCELLED)
        else:
            terminated = isinstance(exc, SystemExit)  # it saw the cancel, then was terminated
            self._kept_after_cancel(state, claimed, now, logs, terminated=terminated)

    def _kept_after_cancel(
        self,
        state: RunState,
        claimed: Claimed,
        now: datetime,
        logs: str,
        *,
        terminated: bool = False,
    ) -> None:
        """The attempt was cancelled while its job ran, and the job is now over (it stopped,
        or its process is being terminated): its lines are kept with it. The cancel
        announced the end; the occurrence is over."""
        how = "was terminated" if terminated else "stopped"
        note = f"The job {how} at {now:%Y-%m-%d %H:%M:%S} UTC."
        if not recording.keep_after_cancel(
            claimed.id, task_id=claimed.task_id, logs=logs, note=note
        ):
            return  # not cancelled: ended otherwise (lost), by someone else
        state.ended = Status.CANCELLED
        if state.guarded and claimed.id is not None:
            release_next_buffered(claimed.id)

    def _retry(
        self, run: RunInfo, state: RunState, claimed: Claimed, now: datetime, error: dict
    ) -> None:
        claimed = recording.resolve(claimed)
        try:
            policy = retries.resolve_policy(
                run.job.retry, _schedule_layer(claimed.schedule_id), retries.run_layer(run.header)
            )
            # The message waits out its countdown unacknowledged: never longer than the
            # longest job, which the broker's visibility timeout exceeds (config.broker).
            delay = min(policy.delay(claimed.attempt), float(settings.JOBS_MAX_TIME_LIMIT))
        except Exception as exc:
            # A policy that cannot be resolved (a bad row stored before validation) fails
            # this attempt now: raising here would leave it running until the reaper.
            logger.error("%s: attempt %d not retried: %s", run.job.name, claimed.attempt, exc)
            note = f"not retried: {exc}"
            if recording.finish(claimed.id, status=Status.FAILED, now=now, note=note, **error):
                self._occurrence_over(state, claimed, Status.FAILED)
            return
        with transaction.atomic():
            if not recording.finish(
                claimed.id,
                status=Status.RETRYING,
                now=now,
                retry_delay=delay,
                next_attempt_at=now + timedelta(seconds=delay),
                **error,
            ):
                return  # no longer running (cancelled meanwhile): nothing to retry
            following = retries.next_attempt(
                claimed,
                now=now,
                delay=delay,
                task_name=run.job.name,
                scheduled_for=run.context.scheduled_for,
                queue=run.queue,
                params=state.params,
                args=[],
            )
        logger.info(
            "%s: attempt %d of %d failed (%s); attempt %d in %.1fs",
            run.job.name,
            claimed.attempt,
            claimed.max_attempts,
            error["error_type"],
            following.attempt,
            delay,
        )
        state.ended = Status.RETRYING
        run_events.finished(claimed.id, Status.RETRYING, claimed.schedule_id, facts=claimed.facts)
        publish_attempt(run, following, countdown=delay, app=self.app, clock=self.clock)

    def _occurrence_over(self, state: RunState, claimed: Claimed, status: str) -> None:
        state.ended = status
        if claimed.id is not None:
            # Alerting listens.
            run_events.finished(claimed.id, status, claimed.schedule_id, facts=claimed.facts)
        if state.guarded:
            release_next_buffered(claimed.id)


def write_end(state: RunState, *, wait: bool, **fields: Any) -> bool:
    """``recording.finish`` of the claimed attempt; once an outage got in the way, waiting
    for the answer, and starting the attempt again first if the outage lost its start: a
    start is committed without waiting for its flush to disk, so a database crash can lose
    the last moment of them (the row is then still pending or queued, and only this process
    ran it). False when the attempt no longer runs (cancelled, or ended, meanwhile)."""
    claimed = state.claimed
    assert claimed is not None and state.start is not None
    retried = state.end_retried
    done = recording.finish(claimed.id, task_id=claimed.task_id, wait=wait or retried, **fields)
    if not done and retried and claimed.id is not None:
        if recording.claim(claimed.id, **state.start.fields(), check_overlap=False) is None:
            return False  # not waiting either: ended or cancelled meanwhile
        logger.warning("run %s: its start was lost by the database; recorded again", claimed.id)
        done = recording.finish(claimed.id, wait=True, **fields)
    if done:
        state.ended = fields["status"]
    return done


def qualified_name(exc: Any) -> str:
    """The class of ``exc`` by its module and name (a builtin's by its name)."""
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def failure_fields(
    exc: Any,
    redactor: Redactor,
    *,
    traceback_text: str = "",
    type_name: Callable[[Any], str] = qualified_name,
) -> dict[str, str]:
    """What the history keeps of a failure, secrets masked and bounded: ``exc`` (what the
    task raised, or returned as its failure) and its ``traceback_text`` (formatted from
    ``exc`` when not given)."""
    if not traceback_text and isinstance(exc, BaseException):
        traceback_text = "".join(traceback.format_exception(exc))
    return {
        "error_type": type_name(exc) if exc is not None else "",
        "error_message": head(redactor.text(str(exc)), MAX_ERROR_MESSAGE),
        "traceback": tail(redactor.text(traceback_text), MAX_TRACEBACK),
    }


def _schedule_layer(schedule_id: int | None) -> dict[str, Any] | None:
    if schedule_id is None:
        return None
    return (
        Schedule.objects.filter(pk=schedule_id)
        .values(*(layer_name(setting) for setting in SETTINGS))
        .first()
    )
