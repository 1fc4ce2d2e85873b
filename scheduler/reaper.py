"""The reaper: nothing stays running forever. Run by beat (``reaper.tick`` in its loop).

An attempt still marked running past its hard time limit plus ``SCHEDULER_REAPER_GRACE``
cannot still be running (the worker kills a job at its hard limit and records it): its
worker is gone (killed, its machine lost) and no redelivery told a worker about it (the
filesystem broker does not redeliver; Redis only after its visibility timeout). It is marked
lost, and rerun as a new attempt when its policy has attempts left and beat can rebuild its
message (an occurrence of a cron entry: a direct call's parameters are not kept).

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

from scheduler import recording, retries, run_events
from scheduler.clock import Clock
from scheduler.dispatch import Dispatcher, outgoing_for
from scheduler.models import JobRun

logger = logging.getLogger(__name__)
Status = JobRun.Status

#: Seconds between two passes.
REAP_EVERY = 30.0
_next_pass = 0.0


def tick(app: Any, clock: Clock) -> int:
    """Reap when a pass is due (called on every beat tick); runs reaped."""
    global _next_pass
    monotonic = time.monotonic()
    if monotonic < _next_pass:
        return 0
    _next_pass = monotonic + REAP_EVERY
    try:
        return reap(app, clock)
    except Exception:  # beat's loop goes on; the next pass tries again
        logger.exception("reaper: pass failed")
        return 0


def reap(app: Any, clock: Clock) -> int:
    now = clock.now()
    grace = timedelta(seconds=settings.SCHEDULER_REAPER_GRACE)
    reaped = 0
    running = JobRun.objects.filter(status=Status.RUNNING).select_related("periodic_task")
    for run in running:
        limit = timedelta(seconds=hard_time_limit(app, run.task_name))
        if run.started_at is None or run.started_at + limit + grace > now:
            continue
        reaped += _reap(app, clock, run, now, limit)
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
        reaped += updated
    return reaped


def _reap(app: Any, clock: Clock, run: JobRun, now: datetime, limit: timedelta) -> int:
    message = (
        f"the worker is gone: still marked running {limit.total_seconds():.0f}s (the hard time "
        f"limit) plus {settings.SCHEDULER_REAPER_GRACE}s after it started ({run.worker_host})"
    )
    rerun: JobRun | None = None
    with transaction.atomic():
        if not recording.finish(
            run.pk, status=Status.LOST, now=now, error_type="WorkerLost", error_message=message
        ):
            return 0  # it ended meanwhile
        if run.attempt < run.max_attempts and run.periodic_task is not None:
            rerun = retries.next_attempt(
                run, now=now, delay=0, note=f"rerun: attempt {run.attempt} was lost"
            )
    logger.warning("reaper: %s attempt %d (run %d) lost", run.task_name, run.attempt, run.pk)
    if rerun is None:  # the occurrence failed (a rerun is no failure yet): alerting listens
        run_events.finished(run.pk, Status.LOST, run.schedule_id)
    if rerun is not None and run.periodic_task is not None:
        outgoing = outgoing_for(run.periodic_task, rerun.pk, rerun.task_id, rerun)
        Dispatcher(app, clock).publish([outgoing])
    return 1


def hard_time_limit(app: Any, task_name: str) -> float:
    """Seconds after which the worker kills ``task_name``: its own limit, else Celery's
    default, else the longest a job may declare."""
    task = app.tasks.get(task_name)
    limit = getattr(task, "time_limit", None) if task is not None else None
    return float(limit or app.conf.task_time_limit or settings.JOBS_MAX_TIME_LIMIT)
