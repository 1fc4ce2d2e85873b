"""The run history on the worker, as catalog-task middleware: every attempt is recorded.

At start (one statement on the common path, ``scheduler.runs.recording.claim``):
- a delivery starts its attempt only if it is still pending or queued: a second delivery of
  a run that already started (a republish racing the first message) or ended is dropped;
- a *redelivery* (the broker's ``redelivered`` flag: an earlier delivery of this very
  message was never acknowledged, so the worker running it died) of an attempt still marked
  running marks that attempt lost, and the rerun is a new attempt with a message of its own;
  unless the attempt still runs in another process of this worker, which only lost its
  broker connection (``scheduler.runs.running_here``): then the redelivery is dropped;
- the overlap policy is enforced again, under a lock on the schedule row, because beat's
  check at emission cannot see a run that a slow queue is about to start;
- a run beat did not send (a direct Celery call, ``manage.py jobs run``) gets its row here.

At the end: status, duration, a bounded result or error, the job's log lines, secrets
masked; a retryable failure schedules the next attempt (``scheduler.runs.retries``), and the
schedule's buffered occurrence (if any) is released once the occurrence is over.

Through a database outage (``scheduler.runs.db_retry``): a start that cannot be written is tried
again for up to ``db_retry.START_RETRY_FOR`` seconds, then the message goes back to the broker (the
job never runs unrecorded); an end is tried again until it is written, up to just before
the job's hard time limit, before the message is acknowledged (a job that succeeded is never
taken for lost and run again).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import uuid
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from celery.exceptions import Reject
from django.conf import settings
from django.db import transaction

from jobs_catalog.middleware import Middleware, RunInfo, SkipRun
from jobs_catalog.secrets import seal_params
from scheduler.clock import Clock, get_clock
from scheduler.runs import db_retry, log_redaction, recording, retries
from scheduler.runs import events as run_events
from scheduler.runs.capture import LogCapture
from scheduler.runs.messages import attempt_id_of, outgoing_for_attempt
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import publish, release_next_buffered
from scheduler.runs.redaction import (
    MAX_ERROR_MESSAGE,
    MAX_TRACEBACK,
    NO_SECRETS,
    Redactor,
    head,
    summary,
    tail,
)
from scheduler.runs.running_here import still_running_here
from scheduler.runs.time_limits import job_time_limits
from scheduler.schedules.models import OverlapPolicy, Schedule

logger = logging.getLogger(__name__)
Status = JobRun.Status
LOST_REASON = "the worker running this attempt was lost (its message was redelivered)"


class OccurrenceMiddleware(Middleware):
    def __init__(self, clock: Clock | None = None, app: Any = None):
        self._clock = clock
        self.app = app

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = get_clock()
        return self._clock

    # --- start ---------------------------------------------------------------------------
    def before_run(self, run: RunInfo) -> None:
        job, context = run.job, run.context
        run.state["began"] = time.monotonic()  # the time limits count from about here
        now = self.clock.now()
        redactor = (
            Redactor.for_params(run.params, job.secret_fields) if job.secret_fields else NO_SECRETS
        )
        log_redaction.use(redactor)  # until the task's end: Celery logs its error after ours
        fields = {
            "now": now,
            "host": run.hostname,
            "pid": os.getpid(),
            "queue": run.queue,
            "params": job.mask(run.params),
            # Outside Celery nothing could deliver a retry: one attempt.
            "run_max_attempts": _int(run.header("retry_max_attempts")),
            "job_max_attempts": job.retry.max_attempts if run.task_id else 1,
        }
        # A run beat did not send is scheduled for when it starts; its retries keep that.
        context.scheduled_for = context.scheduled_for or now
        claimed = self._start(run, fields)
        context.run_id = claimed.id  # None for a direct call whose insert is in flight
        context.attempt, context.max_attempts = claimed.attempt, claimed.max_attempts
        run.state.update(
            claimed=claimed, redactor=redactor, snapshot=fields["params"], start=fields
        )
        run_events.started(claimed.id, claimed.schedule_id, job.name)  # alerting listens
        # Last: nothing after this may fail, or the handler would stay attached.
        run.state["capture"] = LogCapture().attach((context.logger.name, job.module), redactor)

    def _start(self, run: RunInfo, fields: dict[str, Any]) -> recording.Claimed:
        """Record the start, through a database outage of up to ``db_retry.START_RETRY_FOR``; past
        that, the message goes back to the broker to be delivered again (and if the broker
        loses it, beat's sweep publishes the run again)."""
        tries = 0
        attempt_id = attempt_id_of(run.header)

        def claim() -> recording.Claimed:
            nonlocal tries
            tries += 1
            run.state["claim_retried"] = tries > 1
            if attempt_id is None:
                return self._start_unsent(run, fields)
            claimed = recording.claim(attempt_id, **fields)
            return claimed or self._start_slow(run, fields, pk=attempt_id)

        soft, _hard = job_time_limits(run.job)
        deadline = run.state["began"] + min(db_retry.START_RETRY_FOR, soft / 2)
        try:
            return db_retry.until_written(claim, deadline=deadline, what=f"{run.job.name}'s start")
        except db_retry.CONNECTION_ERRORS as exc:
            if run.task_id is None:  # not from a broker: nothing to give back
                raise
            raise Reject(f"the run history is unreachable: {exc}", requeue=True) from exc

    def _start_unsent(self, run: RunInfo, fields: dict[str, Any]) -> recording.Claimed:
        task_id = run.task_id or uuid.uuid4()
        claimed = recording.insert_running(
            task_id=task_id,
            task_name=run.job.name,
            trigger=run.context.trigger,
            scheduled_for=run.context.scheduled_for,
            now=fields["now"],
            host=fields["host"],
            pid=fields["pid"],
            queue=fields["queue"],
            params=fields["params"],
            max_attempts=fields["run_max_attempts"] or fields["job_max_attempts"],
            # Only a redelivery can find the row there already (nothing else sends a
            # direct call's message twice): a first delivery need not wait for the answer.
            wait=run.redelivered,
        )
        return claimed or self._start_slow(run, fields, task_id=task_id)

    def _start_slow(self, run: RunInfo, fields: dict[str, Any], **lookup: Any) -> recording.Claimed:
        """The attempt could not simply be started: decide under a row lock."""
        recording.settle()  # a run this process just ended is seen ended
        rerun: JobRun | None = None
        release = False
        with transaction.atomic():  # the decision is committed before the job runs or not
            row = (
                JobRun.objects.select_for_update(of=("self",))
                .filter(**lookup)
                .select_related("schedule")
                .first()
            )
            if row is None:
                reason = f"run {lookup} does not exist"
            elif row.status in (Status.PENDING, Status.QUEUED):
                reason = _overlap_reason(row)
                claimed = None if reason else recording.claim(row.pk, **fields, check_overlap=False)
                if claimed is not None:
                    schedule = row.schedule
                    run.state["guarded"] = schedule is not None and (
                        schedule.overlap_policy != OverlapPolicy.ALLOW
                    )
                    return claimed
            elif row.status == Status.RUNNING and _claimed_here(row, run, fields):
                return recording.Claimed.of(row)  # an earlier try committed; its reply was lost
            elif row.status == Status.RUNNING and run.redelivered:
                if still_running_here(row.worker_host, row.worker_pid, run.hostname):
                    reason = (
                        f"run {row.pk} is still running here (pid {row.worker_pid}): "
                        "a redelivery after a broker reconnect"
                    )
                else:
                    rerun, reason = self._lost(row, run, fields["now"])
                    release = rerun is None
            else:
                reason = f"run {row.pk} is already {row.status}: duplicate delivery"
        if rerun is not None:
            self._publish(run, rerun, countdown=0)
        if release and row is not None:
            release_next_buffered(row.pk)
        raise SkipRun(reason)

    def _lost(self, row: JobRun, run: RunInfo, now: datetime) -> tuple[JobRun | None, str]:
        """The attempt ``row`` was running when its worker died: mark it lost, and rerun
        the occurrence as a new attempt while attempts remain."""
        rerun = row.attempt < row.max_attempts
        _ended, following = retries.record_lost(row, now=now, reason=LOST_REASON, rerun=rerun)
        if following is None:
            return None, f"attempt {row.attempt} lost; no attempts left"
        return following, f"attempt {row.attempt} lost; rerun as attempt {following.attempt}"

    # --- end -----------------------------------------------------------------------------
    def after_run(self, run: RunInfo, result: Any, exc: BaseException | None) -> None:
        capture: LogCapture | None = run.state.pop("capture", None)
        if capture is not None:
            capture.detach()
        claimed: recording.Claimed | None = run.state.get("claimed")
        if claimed is None:
            return
        now = self.clock.now()
        logs = capture.text() if capture is not None else ""
        _soft, hard = job_time_limits(run.job)
        tries = 0

        def end() -> None:
            nonlocal tries
            tries += 1
            run.state["end_retried"] = tries > 1
            self._end(run, claimed, now, logs, result, exc)

        db_retry.until_written(
            end,
            deadline=run.state["began"] + hard - db_retry.END_RETRY_MARGIN,
            what=f"the end of {run.job.name} (run {claimed.id or claimed.task_id})",
        )

    def _end(
        self,
        run: RunInfo,
        claimed: recording.Claimed,
        now: datetime,
        logs: str,
        result: Any,
        exc: BaseException | None,
    ) -> None:
        if isinstance(exc, SkipRun):  # a later middleware decided not to run it
            recording.finish(
                claimed.id,
                task_id=claimed.task_id,
                status=Status.SKIPPED,
                now=now,
                note=exc.reason,
            )
            return
        redactor: Redactor = run.state["redactor"]
        logs = redactor.text(logs)
        # Unless its schedule waits on it, nothing depends on the end being written: the
        # worker sends it without waiting for the reply.
        wait = bool(run.state.get("guarded"))
        if exc is None:
            result_text = summary(result, redactor)
            if self._finish(
                run,
                claimed,
                status=Status.SUCCEEDED,
                now=now,
                result=result_text,
                logs=logs,
                wait=wait,
            ):
                self._occurrence_over(run, claimed, Status.SUCCEEDED)
            return
        error = {
            "error_type": _type_name(exc),
            "error_message": head(redactor.text(str(exc)), MAX_ERROR_MESSAGE),
            "traceback": tail(
                redactor.text("".join(traceback.format_exception(exc))), MAX_TRACEBACK
            ),
            "logs": logs,
        }
        status = retries.outcome(exc, run.job.retry, claimed.attempt, claimed.max_attempts)
        if status == Status.RETRYING:
            self._retry(run, claimed, now, error)
        elif self._finish(run, claimed, status=status, now=now, wait=wait, **error):
            self._occurrence_over(run, claimed, status)

    def _finish(
        self, run: RunInfo, claimed: recording.Claimed, *, wait: bool, **fields: Any
    ) -> bool:
        """``recording.finish``; once an outage got in the way, waiting for the answer, and
        starting the attempt again first if the outage lost its start: a start is committed
        without waiting for its flush to disk, so a database crash can lose the last moment
        of them (the row is then still pending or queued, and only this process ran it)."""
        retried = bool(run.state.get("end_retried"))
        done = recording.finish(claimed.id, task_id=claimed.task_id, wait=wait or retried, **fields)
        if done or not retried or claimed.id is None:
            return done
        if recording.claim(claimed.id, **run.state["start"], check_overlap=False) is None:
            return False  # not waiting either: ended or cancelled meanwhile
        logger.warning("run %s: its start was lost by the database; recorded again", claimed.id)
        return recording.finish(claimed.id, wait=True, **fields)

    def _retry(self, run: RunInfo, claimed: recording.Claimed, now: datetime, error: dict) -> None:
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
                self._occurrence_over(run, claimed, Status.FAILED)
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
                params=run.state["snapshot"],
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
        run_events.finished(claimed.id, Status.RETRYING, claimed.schedule_id, facts=claimed.facts)
        self._publish(run, following, countdown=delay)

    def _publish(self, run: RunInfo, attempt: JobRun, countdown: float) -> None:
        message = outgoing_for_attempt(
            attempt,
            task_name=run.job.name,
            kwargs=seal_params(run.params, run.job.secret_fields),  # a direct call's too
            queue=run.queue,
            header=run.header,
            countdown=countdown,
        )
        publish([message], app=self.app or current_app, clock=self.clock)

    def _occurrence_over(self, run: RunInfo, claimed: recording.Claimed, status: str) -> None:
        if claimed.id is not None:
            # Alerting listens.
            run_events.finished(claimed.id, status, claimed.schedule_id, facts=claimed.facts)
        if run.state.get("guarded"):
            release_next_buffered(claimed.id)


def _claimed_here(row: JobRun, run: RunInfo, fields: dict[str, Any]) -> bool:
    """``row`` is running because an earlier try of this very start was committed (its
    reply lost to the outage): this process, which runs one job at a time, marked it."""
    return bool(run.state.get("claim_retried")) and (row.worker_host, row.worker_pid) == (
        fields["host"][:255],
        fields["pid"],
    )


def _overlap_reason(row: JobRun) -> str:
    """Apply the schedule's overlap policy to ``row`` (locked, pending or queued); the
    reason it must not start, or "" when it may."""
    schedule = row.schedule
    if schedule is None or schedule.overlap_policy == OverlapPolicy.ALLOW:
        return ""
    Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
    others = JobRun.objects.filter(schedule=schedule).exclude(pk=row.pk)
    if not others.filter(status=Status.RUNNING).exists():
        return ""
    buffered = others.filter(status=Status.BUFFERED).exists()
    if schedule.overlap_policy == OverlapPolicy.BUFFER_ONE and not buffered:
        row.status, row.note = Status.BUFFERED, "waits for the run going"
    else:
        row.status, row.note = Status.SKIPPED, "skipped: a run was going"
    row.save(update_fields=["status", "note"])
    if row.status == Status.SKIPPED:
        run_events.finished(row)  # a missed occurrence, to alerting
    return f"run {row.pk} {row.status} by the overlap policy"


def _schedule_layer(schedule_id: int | None) -> dict[str, Any] | None:
    if schedule_id is None:
        return None
    return (
        Schedule.objects.filter(pk=schedule_id)
        .values("retry_max_attempts", "retry_backoff_base", "retry_backoff_cap")
        .first()
    )


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
