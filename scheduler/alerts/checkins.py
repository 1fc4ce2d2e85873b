"""Sentry Crons check-ins for schedules that alert to a Sentry channel: ``in_progress`` when a
run starts, ``ok`` or ``error`` when its occurrence ends, each with a monitor config taken from
the schedule itself, so Sentry creates and updates the monitor on its own (upsert):

- ``schedule``: the schedule's cron, in its ``timezone``;
- ``checkin_margin``: the grace period, in whole minutes (at least 1);
- ``max_runtime``: the maximum runtime, else the job's hard time limit, in whole minutes;
- ``failure_issue_threshold``: the failure threshold; ``recovery_threshold``: 1.

A monitor's slug is the schedule's name made a slug, with its id (renaming a schedule starts
a new monitor). Every attempt of one occurrence reports under one check-in id.

Check-ins go through sentry-sdk's background transport after the commit: they never wait
for the network inside a run, and a Sentry that is down costs a run nothing.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.text import slugify

from jobs_catalog.registry import registry
from scheduler.alerts import effective as config
from scheduler.alerts.channels.sentry import async_client
from scheduler.alerts.models import AlertChannel
from scheduler.alerts.rules import FAILED_STATUSES, SUCCEEDED, Policy
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule

logger = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("8d4f5a52-8a0e-4c55-9a43-5f7e6c1f2b10")


def monitor_slug(schedule: Schedule) -> str:
    base = slugify(schedule.name)[:40].strip("-") or "schedule"
    return f"{base}-{schedule.pk}"


def check_in_id(run: JobRun) -> str:
    """One id for every attempt of an occurrence."""
    return uuid.uuid5(_NAMESPACE, f"occurrence:{run.first_attempt_id}").hex


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def monitor_config(schedule: Schedule, policy: Policy) -> dict[str, Any]:
    runtime = policy.max_runtime
    if not runtime:
        job = registry.find(schedule.job.name) if schedule.job_id else None
        if job is not None:
            runtime = job.effective_time_limits(
                settings.JOBS_DEFAULT_SOFT_TIME_LIMIT, settings.JOBS_DEFAULT_TIME_LIMIT
            )[1]
    config_: dict[str, Any] = {
        "schedule": {"type": "crontab", "value": schedule.cron},
        "timezone": schedule.timezone,
        "checkin_margin": _minutes(policy.grace),
        "failure_issue_threshold": policy.failure_threshold,
        "recovery_threshold": 1,
    }
    if runtime:
        config_["max_runtime"] = _minutes(runtime)
    return config_


def _sentry_dsns(policy: Policy) -> list[str]:
    dsns = []
    for channel in config.cached_channels_of(policy):
        if channel.kind == AlertChannel.Kind.SENTRY:
            dsn = channel.sentry_dsn or settings.SENTRY_DSN
            if dsn and dsn not in dsns:
                dsns.append(dsn)
    return dsns


def _status(run: JobRun) -> str | None:
    if run.status == JobRun.Status.RUNNING:
        return "in_progress"
    if run.status == SUCCEEDED:
        return "ok"
    if run.status in FAILED_STATUSES:
        return "error"
    return None  # retrying, skipped, cancelled: the occurrence has not ended well or badly


def report(run: JobRun, schedule: Schedule, policy: Policy | None = None) -> int:
    """Queue the check-in for ``run``'s current status to each Sentry channel of its
    schedule, after the commit. Returns how many were queued."""
    status = _status(run)
    if status is None:
        return 0
    policy = policy or config.cached_policy_for(schedule.pk)
    dsns = _sentry_dsns(policy)
    if not dsns:
        return 0
    event: dict[str, Any] = {
        "type": "check_in",
        "check_in_id": check_in_id(run),
        "monitor_slug": monitor_slug(schedule),
        "status": status,
        "monitor_config": monitor_config(schedule, policy),
    }
    if status != "in_progress" and run.started_at and run.finished_at:
        event["duration"] = (run.finished_at - run.started_at).total_seconds()

    def send() -> None:
        for dsn in dsns:
            try:
                async_client(dsn).capture_event(dict(event))
            except Exception:  # a check-in is never worth a run
                logger.exception("Sentry check-in for schedule %s not sent", schedule.pk)

    transaction.on_commit(send)
    return len(dsns)
