"""The reaper: nothing stays running forever. Run by beat (``reaper.tick`` in its loop).

Whether a running attempt's worker is alive, its heartbeat says (``scheduler.runs.heartbeats``):

- a worker not heard from for ``SCHEDULER_WORKER_LOST_AFTER`` seconds is dead (killed, its
  machine lost), and so is an earlier incarnation of a worker restarted under the same name:
  their running attempts are lost;
- a live worker's attempt is left alone: the worker kills a job at its hard time limit and
  records it, and an end held up by a database outage is still being written. Only past its
  hard limit plus ``HUNG_WORKER_GRACE`` (a worker alive but stuck) is it taken for lost;
- a worker with no heartbeat row (one from before heartbeats) is judged as before them: an
  attempt still running past its hard time limit plus ``SCHEDULER_REAPER_GRACE`` is lost.

A lost attempt is rerun as a new attempt when its policy has attempts left and beat can
rebuild its message (an occurrence of a cron entry: a direct call's parameters are not
kept); otherwise the occurrence failed and alerting hears of it.

A retry of a direct call left pending by a worker that died between committing it and
publishing it can never be published by anyone: it is marked lost too, after the grace.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from scheduler.clock import Clock
from scheduler.runs import events as run_events
from scheduler.runs import retries
from scheduler.runs.heartbeats import Liveness, Verdict
from scheduler.runs.messages import message_of, request_of
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import publish
from scheduler.runs.time_limits import hard_time_limit

logger = logging.getLogger(__name__)
Status = JobRun.Status

#: Seconds between two passes, at most: a sixth of SCHEDULER_WORKER_LOST_AFTER (so a dead
#: worker is noticed soon after it falls silent), within these bounds.
REAP_EVERY = 30.0
MIN_REAP_EVERY = 1.0
#: A pass this much later than due means the reaper could not look meanwhile (beat's
#: longest sleep is 5 s): the database was down, or beat was.
LATE_PASS = 6.0
#: Seconds past its hard time limit after which a live worker's attempt is taken for lost:
#: the worker is alive but stuck (it kills a job at its hard limit and records it).
HUNG_WORKER_GRACE = 3600.0
#: Running attempts looked at per pass, oldest first.
REAP_BATCH = 5000
_next_pass = 0.0
_last_pass = -float("inf")
_watching_since = 0.0


def reap_every() -> float:
    return max(MIN_REAP_EVERY, min(REAP_EVERY, settings.SCHEDULER_WORKER_LOST_AFTER / 6))


def tick(app: Any, clock: Clock) -> int:
    """Reap when a pass is due (called on every beat tick); runs reaped."""
    global _next_pass, _last_pass, _watching_since
    monotonic = time.monotonic()
    if monotonic < _next_pass:
        return 0
    every = reap_every()
    _next_pass = monotonic + every
    if monotonic - _last_pass > every + LATE_PASS:
        # Heartbeats missed while nobody could look (a database outage stops the workers'
        # too) prove nothing: judge silence only once watched for a whole LOST_AFTER.
        _watching_since = monotonic
    judge = monotonic - _watching_since >= settings.SCHEDULER_WORKER_LOST_AFTER
    try:
        reaped = reap(app, clock, judge_heartbeats=judge)
    except Exception:  # beat's loop goes on; the next pass tries again
        logger.exception("reaper: pass failed")
        return 0
    _last_pass = monotonic
    return reaped


def reap(app: Any, clock: Clock, judge_heartbeats: bool = True) -> int:
    now = clock.now()
    grace = timedelta(seconds=settings.SCHEDULER_REAPER_GRACE)
    liveness = Liveness.read(now, judge=judge_heartbeats)
    reaped = 0
    suspects = liveness.suspect_hosts(since=now - grace)
    running = (
        JobRun.objects.filter(status=Status.RUNNING)
        .filter(
            Q(started_at__isnull=True) | Q(started_at__lt=now - grace) | Q(worker_host__in=suspects)
        )
        .select_related("periodic_task")
        .order_by("started_at")[:REAP_BATCH]
    )
    for run in running:
        limit = timedelta(seconds=hard_time_limit(app, run.task_name))
        reason = _why_lost(run, liveness, limit, grace)
        if reason:
            reaped += _reap(app, clock, run, now, reason)
    orphans = JobRun.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now - grace),
        status=Status.PENDING,
        periodic_task__isnull=True,
        created_at__lt=now - grace,
    ).values_list("pk", flat=True)
    for pk in orphans:
        updated = JobRun.objects.filter(pk=pk, status=Status.PENDING).update(
            status=Status.LOST,
            finished_at=now,
            error_type="NeverPublished",
            error_message="the worker stopped before publishing this attempt, and a direct "
            "call's parameters are not kept to publish it again",
        )
        if updated:  # a retry that will never run: the occurrence failed
            run_events.finished(pk, Status.LOST)
        reaped += updated
    return reaped


def _why_lost(run: JobRun, liveness: Liveness, limit: timedelta, grace: timedelta) -> str:
    """Why ``run`` (running) is lost, or "" while it may still be running."""
    if run.started_at is None:
        return ""
    verdict = liveness.verdict(run.worker_host, run.started_at)
    host = run.worker_host
    if verdict == Verdict.DEAD:
        beat = liveness.beats[host]
        if run.started_at < beat.started_at:
            return f"its worker ({host}) was restarted since it started: the worker is gone"
        return (
            f"its worker ({host}) stopped sending heartbeats at "
            f"{beat.last_seen_at:%Y-%m-%d %H:%M:%S%z}: the worker is gone"
        )
    seconds = limit.total_seconds()
    if verdict == Verdict.ALIVE:
        hung = timedelta(seconds=HUNG_WORKER_GRACE)
        if run.started_at + limit + hung > liveness.now:
            return ""
        return (
            f"still marked running {seconds:.0f}s (the hard time limit) plus "
            f"{HUNG_WORKER_GRACE:.0f}s after it started, although its worker ({host}) is "
            "alive: the worker is stuck"
        )
    if run.started_at + limit + grace > liveness.now:
        return ""
    return (
        f"the worker is gone: still marked running {seconds:.0f}s (the hard time "
        f"limit) plus {settings.SCHEDULER_REAPER_GRACE}s after it started ({host})"
    )


def _reap(app: Any, clock: Clock, run: JobRun, now: datetime, message: str) -> int:
    # Beat can rebuild the message of a cron entry's occurrence and of an application's
    # request; a direct call's is gone with its worker.
    rebuildable = run.periodic_task is not None or request_of(run) is not None
    rerun = run.attempt < run.max_attempts and rebuildable
    with transaction.atomic():
        ended, following = retries.record_lost(run, now=now, reason=message, rerun=rerun)
    if not ended:
        return 0  # it ended meanwhile
    logger.warning("reaper: %s attempt %d (run %d) lost", run.task_name, run.attempt, run.pk)
    outgoing = message_of(following) if following is not None else None
    if outgoing is not None:
        publish([outgoing], app=app, clock=clock)
    return 1
