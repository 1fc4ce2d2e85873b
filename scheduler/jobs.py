"""The scheduler's own catalog jobs, found by discovery like any app's ``jobs`` module (the
catalog never imports the scheduler)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from jobs_catalog import JobContext, Param, job
from scheduler.runs import retention
from scheduler.schedules.platform_schedules import PRUNE_JOB


@job(PRUNE_JOB, title="Prune the run history")
def prune_run_history(
    ctx: JobContext,
    older_than_days: int | None = Param(
        None,
        ge=1,
        le=36_500,
        help="Delete runs recorded more than this many days ago; empty: the "
        "JOBS_HISTORY_RETENTION_DAYS setting (30 by default).",
    ),
    keep_last: int | None = Param(
        None,
        ge=0,
        le=100_000,
        help="Always keep this many of each schedule's latest runs, however old; empty: the "
        "JOBS_HISTORY_KEEP_PER_SCHEDULE setting (50 by default).",
    ),
    batch_size: int = Param(
        retention.DEFAULT_BATCH_SIZE,
        ge=100,
        le=retention.MAX_BATCH_SIZE,
        help="Occurrences examined and deleted per transaction.",
    ),
    max_seconds: int = Param(
        240,
        ge=1,
        le=21_600,
        help="Start no new batch after this long; the rest waits for the next run. Keep it "
        "under the job's time limit (JOBS_DEFAULT_SOFT_TIME_LIMIT).",
    ),
) -> dict[str, Any]:
    """Delete old runs from the history, in small batches.

    Runs still to run or running, the latest runs of every schedule and unresolved failures
    (a failed, timed-out or lost occurrence with no later success of its schedule) are kept,
    whatever their age. Returns how many runs were deleted and why others were kept.
    """
    days = older_than_days if older_than_days is not None else settings.JOBS_HISTORY_RETENTION_DAYS
    keep = keep_last if keep_last is not None else settings.JOBS_HISTORY_KEEP_PER_SCHEDULE
    ctx.logger.info("pruning runs older than %d days, keeping %d per schedule", days, keep)
    try:
        report = retention.prune_history(
            older_than=timedelta(days=days),
            keep_last=keep,
            batch_size=batch_size,
            deadline=time.monotonic() + max_seconds,
        )
    except SoftTimeLimitExceeded:
        # Every batch before this one is committed; the next run goes on from there.
        ctx.logger.warning("stopped by the time limit; the next run continues")
        raise
    result = report.as_dict()
    ctx.logger.info(
        "deleted %d run(s) in %d batch(es)%s",
        report.deleted,
        report.batches,
        "; stopped at max_seconds, more remain" if report.interrupted else "",
    )
    return result
