"""The claim: which attempt a delivery runs, recorded as started; one statement on the
common path (``scheduler.runs.recording.claim``), else decided under a row lock:

- a delivery starts its attempt only if it is still pending or queued: a second delivery of
  a run that already started (a republish racing the first message) or ended is dropped;
- a *redelivery* (the broker's ``redelivered`` flag: an earlier delivery of this very
  message was never acknowledged, so the worker running it died) of an attempt still marked
  running marks that attempt lost, and the rerun is a new attempt
  (``scheduler.runs.retries.record_lost``); unless the attempt still runs in another process
  of this worker, which only lost its broker connection (``scheduler.runs.running_here``):
  then the redelivery is dropped;
- the overlap policy (``scheduler.policies.overlap``) is applied again, under a lock on the
  schedule row, because beat's check at emission cannot see a run that a slow queue is about
  to start;
- a run beat did not send (a direct Celery call, ``manage.py jobs run``) gets its row here.

Through a database outage (``scheduler.runs.db_retry``) a start is tried again for up to
``db_retry.START_RETRY_FOR`` seconds; then a catalog job's message goes back to the broker
(the job never runs unrecorded).

Plain django-celery-beat tasks are claimed by the same functions (``scheduler.runs.plain_tasks``),
with what a signal imposes: the task runs whatever is decided, so the rerun of a lost attempt
is claimed for the redelivery itself (a catalog job's gets a message of its own), and a
start that cannot be written leaves the task running unrecorded.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from celery import current_app
from celery.exceptions import Reject
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet

from jobs_catalog.middleware import RunInfo, SkipRun
from jobs_catalog.secrets import seal_params
from scheduler.policies import overlap
from scheduler.policies.overlap import OverlapPolicy
from scheduler.policies.retry import layer_name
from scheduler.runs import db_retry, recording, retries
from scheduler.runs import events as run_events
from scheduler.runs.messages import attempt_id_of, outgoing_for_attempt
from scheduler.runs.middleware.state import RunMiddleware, RunState, Start, state_of
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import publish, release_next_buffered
from scheduler.runs.recording import Claimed
from scheduler.runs.running_here import still_running_here
from scheduler.runs.time_limits import job_time_limits
from scheduler.schedules.models import Schedule

Status = JobRun.Status
LOST_REASON = "the worker running this attempt was lost (its message was redelivered)"


@dataclass(frozen=True)
class Delivery:
    """What the claim knows of a message's delivery."""

    #: The worker's node name.
    hostname: str
    #: The broker's word that an earlier delivery of this message was never acknowledged.
    redelivered: bool = False
    #: Celery's own retries of the task (``self.retry()``, which a plain task may call).
    retries: int = 0
    #: The task runs whatever the claim decides (a plain task: a signal cannot stop it).
    runs_anyway: bool = False


@dataclass(frozen=True)
class Refused:
    """The delivery runs no attempt, and why; what to do once that is committed."""

    reason: str
    #: The rerun of a lost attempt, to publish.
    rerun: JobRun | None = None
    #: An attempt whose occurrence is over: its schedule's buffered occurrence may go.
    release_after: int | None = None


class Claim(RunMiddleware):
    """Claims the attempt a catalog job's delivery runs, or drops the delivery
    (``SkipRun``). Needs the masked parameters of ``secrets.Redaction`` before it."""

    def before_run(self, run: RunInfo) -> None:
        state = state_of(run)
        if state.params is None:
            raise ImproperlyConfigured(
                "JOBS_TASK_MIDDLEWARE: scheduler.runs.middleware.secrets.Redaction must come "
                "before scheduler.runs.middleware.claim.Claim (a start keeps the parameters "
                "masked)"
            )
        job, context = run.job, run.context
        now = self.clock.now()
        start = Start(
            now=now,
            host=run.hostname,
            pid=os.getpid(),
            queue=run.queue,
            params=state.params,
            run_max_attempts=_int(run.header(layer_name("max_attempts"))),
            # Outside Celery nothing could deliver a retry: one attempt.
            job_max_attempts=job.retry.max_attempts if run.task_id else 1,
        )
        # A run beat did not send is scheduled for when it starts; its retries keep that.
        context.scheduled_for = context.scheduled_for or now
        state.start = start
        claimed = self._start(run, state, start)
        context.run_id = claimed.id  # None for a direct call whose insert is in flight
        context.attempt, context.max_attempts = claimed.attempt, claimed.max_attempts
        state.claimed = claimed

    def _start(self, run: RunInfo, state: RunState, start: Start) -> Claimed:
        """Record the start, through a database outage of up to ``db_retry.START_RETRY_FOR``;
        past that, the message goes back to the broker to be delivered again (and if the
        broker loses it, beat's sweep publishes the run again)."""
        attempt_id = attempt_id_of(run.header)
        delivery = Delivery(run.hostname, redelivered=run.redelivered)

        def attempt(tries: int) -> Claimed:
            state.claim_retried = tries > 1
            if attempt_id is None:
                got = self._start_unsent(run, state, start, delivery)
            else:
                got = claim(attempt_id, start, delivery, state)
            if isinstance(got, Refused):
                self._refused(run, got)
            return got

        soft, _hard = job_time_limits(run.job)
        deadline = state.began + min(db_retry.START_RETRY_FOR, soft / 2)
        try:
            return db_retry.until_written(
                db_retry.numbered(attempt), deadline=deadline, what=f"{run.job.name}'s start"
            )
        except db_retry.CONNECTION_ERRORS as exc:
            if run.task_id is None:  # not from a broker: nothing to give back
                raise
            raise Reject(f"the run history is unreachable: {exc}", requeue=True) from exc

    def _start_unsent(
        self, run: RunInfo, state: RunState, start: Start, delivery: Delivery
    ) -> Claimed | Refused:
        task_id = run.task_id or uuid.uuid4()
        claimed = recording.insert_running(
            task_id=task_id,
            task_name=run.job.name,
            trigger=run.context.trigger,
            scheduled_for=run.context.scheduled_for,
            now=start.now,
            host=start.host,
            pid=start.pid,
            queue=start.queue,
            params=start.params,
            max_attempts=start.run_max_attempts or start.job_max_attempts,
            # Only a redelivery can find the row there already (nothing else sends a
            # direct call's message twice): a first delivery need not wait for the answer.
            wait=run.redelivered,
        )
        if claimed is not None:
            return claimed
        return claim_under_lock(JobRun.objects.filter(task_id=task_id), start, delivery, state)

    def _refused(self, run: RunInfo, refused: Refused) -> NoReturn:
        if refused.rerun is not None:
            publish_attempt(run, refused.rerun, countdown=0, app=self.app, clock=self.clock)
        if refused.release_after is not None:
            release_next_buffered(refused.release_after)
        raise SkipRun(refused.reason)


def claim(
    attempt_id: int,
    start: Start,
    delivery: Delivery,
    state: RunState,
    *,
    attempts: QuerySet[JobRun] | None = None,
) -> Claimed | Refused:
    """Start the attempt ``attempt_id``: in one statement when nothing stands in the way,
    else as decided under a lock on the latest of ``attempts`` (by default the attempt
    itself)."""
    claimed = recording.claim(attempt_id, **start.fields())
    if claimed is not None:
        return claimed
    if attempts is None:
        attempts = JobRun.objects.filter(pk=attempt_id)
    return claim_under_lock(attempts, start, delivery, state)


def claim_under_lock(
    attempts: QuerySet[JobRun], start: Start, delivery: Delivery, state: RunState
) -> Claimed | Refused:
    """The attempt could not simply be started: decide under a lock on the latest of
    ``attempts``, and commit the decision before the task runs or not."""
    recording.settle()  # a run this process just ended is seen ended
    with transaction.atomic():
        row = (
            attempts.select_for_update(of=("self",))
            .select_related("schedule")
            .order_by("-attempt")
            .first()
        )
        if row is None:
            return Refused("the run does not exist (any more)")
        if row.status in (Status.PENDING, Status.QUEUED):
            reason = overlap_reason(row)
            if reason:
                return Refused(reason)
            state.guarded = row.schedule is not None and (
                row.schedule.overlap_policy != OverlapPolicy.ALLOW
            )
            return _claim_locked(row, start)
        if row.status == Status.RUNNING and _claimed_here(row, start, state):
            return Claimed.of(row)  # an earlier try committed; its reply was lost
        if row.status == Status.RUNNING and delivery.redelivered:
            if still_running_here(row.worker_host, row.worker_pid, delivery.hostname):
                return Refused(
                    f"run {row.pk} is still running here (pid {row.worker_pid}): "
                    "a redelivery after a broker reconnect"
                )
            return _lost(row, start, delivery)
        if row.status == Status.RETRYING and delivery.retries >= row.attempt:
            note = "retried by the task (Celery retry)"
            following = retries.next_attempt(row, now=start.now, delay=0, note=note)
            return _claim_locked(following, start)
        return Refused(f"run {row.pk} is already {row.status}: duplicate delivery")


def _lost(row: JobRun, start: Start, delivery: Delivery) -> Claimed | Refused:
    """``row`` was running when its worker died: lost, and rerun as a new attempt while
    attempts remain (always for a task that runs anyway)."""
    rerun = delivery.runs_anyway or row.attempt < row.max_attempts
    _ended, following = retries.record_lost(row, now=start.now, reason=LOST_REASON, rerun=rerun)
    if following is None:
        return Refused(f"attempt {row.attempt} lost; no attempts left", release_after=row.pk)
    if delivery.runs_anyway:
        return _claim_locked(following, start)
    return Refused(
        f"attempt {row.attempt} lost; rerun as attempt {following.attempt}", rerun=following
    )


def _claim_locked(row: JobRun, start: Start) -> Claimed | Refused:
    """Start ``row``, decided on under the lock: its overlap policy applied already."""
    claimed = recording.claim(row.pk, **start.fields(), check_overlap=False)
    return claimed if claimed is not None else Refused(f"run {row.pk} could not be started")


def _claimed_here(row: JobRun, start: Start, state: RunState) -> bool:
    """``row`` is running because an earlier try of this very start was committed (its
    reply lost to the outage): this process, which runs one job at a time, marked it."""
    return state.claim_retried and (row.worker_host, row.worker_pid) == (
        start.host[:255],
        start.pid,
    )


def counted_at_start(running: int, buffered: int) -> tuple[int, int]:
    """What the overlap policy counts when an attempt is about to start: the schedule's
    other attempts running, and those buffered only while one runs. A buffered occurrence
    waits for a running one; with none running it is being released, or waits behind a
    later attempt of the very occurrence starting now, and holds nothing back."""
    return running, buffered if running else 0


def overlap_reason(row: JobRun) -> str:
    """Apply the schedule's overlap policy to ``row`` (locked, pending or queued): the
    reason it must not start (it is then buffered or skipped), or "" when it may."""
    schedule = row.schedule
    if schedule is None or schedule.overlap_policy == OverlapPolicy.ALLOW:
        return ""
    Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
    others = JobRun.objects.filter(schedule=schedule).exclude(pk=row.pk)
    # The policy asks whether there are any, not how many.
    running = int(others.filter(status=Status.RUNNING).exists())
    buffered = int(bool(running) and others.filter(status=Status.BUFFERED).exists())
    decision = overlap.decide(schedule.overlap_policy, *counted_at_start(running, buffered))
    if decision == overlap.Decision.PUBLISH:
        return ""
    if decision == overlap.Decision.BUFFER:
        row.status, row.note = Status.BUFFERED, "waits for the run going"
    else:
        row.status, row.note = Status.SKIPPED, "skipped: a run was going"
    row.save(update_fields=["status", "note"])
    if row.status == Status.SKIPPED:
        run_events.finished(row)  # a missed occurrence, to alerting
    return f"run {row.pk} {row.status} by the overlap policy"


def publish_attempt(
    run: RunInfo, attempt: JobRun, *, countdown: float, app: Any = None, clock: Any = None
) -> None:
    """Publish ``attempt``, a later attempt of ``run``'s occurrence, through the outbox."""
    message = outgoing_for_attempt(
        attempt,
        task_name=run.job.name,
        kwargs=seal_params(run.params, run.job.secret_fields),  # a direct call's too
        queue=run.queue,
        header=run.header,
        countdown=countdown,
    )
    publish([message], app=app or current_app, clock=clock)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
