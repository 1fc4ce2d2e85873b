"""Runs a test starts and reads: one occurrence committed and published as beat does, its
attempts in the history, and the lines its job appended to a file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from celery import Celery
from django.db.models import Q

from jobs_catalog.models import JobDefinition
from scheduler.clock import SystemClock
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import Outbox
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule

FINAL = (JobRun.Status.SUCCEEDED, JobRun.Status.FAILED, JobRun.Status.TIMED_OUT)


def run_now(client: Celery, queue: str, job: str, params: dict, **schedule_fields) -> JobRun:
    """Commit an occurrence of a new schedule of ``job`` and publish it through ``client``."""
    schedule = Schedule(
        **schedule_fields,
        name=f"{job} {uuid.uuid4().hex[:6]}",
        job=JobDefinition.objects.get(name=job),
        cron="0 0 1 1 *",
        params=params,
        queue=queue,
    )
    save_schedule(schedule)
    [run] = Outbox(client, SystemClock()).enqueue(
        schedule, [datetime.now(UTC).replace(microsecond=0)], JobRun.Trigger.MANUAL
    )
    return run


def attempts(first: JobRun) -> list[JobRun]:
    return list(JobRun.objects.filter(Q(pk=first.pk) | Q(occurrence=first)).order_by("attempt"))


def over(first: JobRun) -> bool:
    """Every attempt of the occurrence has ended and the last one is final."""
    runs = attempts(first)
    return bool(runs) and runs[-1].status in FINAL


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
