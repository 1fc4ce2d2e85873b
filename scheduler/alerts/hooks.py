"""Alerting's receivers of the run events (:mod:`scheduler.runs.events`).

Cheap by design, since they run in every job's process: a run that starts costs no query
unless a Sentry channel exists (then its check-in is queued); a run that ends costs none
when the worker learnt with its start that its schedule had no open incident, else one
indexed read, and reads policy and history only when it failed or something is open.
Nothing is sent from here: deliveries are recorded and the alert task sends them after the
commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sentry_sdk
from django.db import transaction

from scheduler.alerts import checkins, evaluate
from scheduler.alerts import effective as config
from scheduler.alerts.incidents import any_open, open_of
from scheduler.alerts.rules import FAILED_STATUSES
from scheduler.alerts.sentry_scope import tag_run
from scheduler.clock import get_clock
from scheduler.runs.models import JobRun

logger = logging.getLogger(__name__)
Status = JobRun.Status
#: The fact read with every start (``facts`` of a run's end): its schedule has an open incident.
INCIDENT_OPEN = "incident_open"


def on_run_started(
    sender: Any, run: JobRun, run_id: int, schedule_id: int | None, task_name: str, **kwargs: Any
) -> None:
    if schedule_id is None:
        return  # a plain cron entry or a direct call: alerts are per schedule
    if sentry_sdk.get_client().is_active():
        tag_run(task_name, schedule_id, run_id)
    if config.sentry_in_use():
        checkins.report(run, run.schedule)


def on_run_finished(
    sender: Any,
    run: JobRun,
    run_id: int,
    schedule_id: int | None,
    status: str,
    facts: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    if schedule_id is None:
        return
    incident_open = (facts or {}).get(INCIDENT_OPEN)
    failed, skipped = status in FAILED_STATUSES, status == Status.SKIPPED
    # A run that did not fail needs the incidents only when one is open: known from its
    # start (an incident opened while it ran waits for the next run's end, or, too long,
    # for the watchdog), else read.
    if incident_open is None:
        incident_open = any_open(schedule_id)
    open_ = open_of(schedule_id) if failed or skipped or incident_open else {}
    if open_ or failed or skipped:
        now = get_clock().now()
        with transaction.atomic():
            if failed:
                evaluate.run_failed(run, open_, now)
            elif status == Status.SUCCEEDED:
                evaluate.run_succeeded(run, open_, now)
            elif skipped:
                reason = run.note or "skipped by the overlap policy"
                evaluate.missed([evaluate.Missing(schedule_id, reason, run_id)], now)
            evaluate.run_ended(run, open_, now)
    if config.sentry_in_use():
        checkins.report(run, run.schedule)


def on_runs_not_started(sender: Any, runs: list[JobRun], **kwargs: Any) -> None:
    """Beat recorded occurrences it will not run. Those skipped by the overlap policy are
    missed runs; those missed while beat was down (or the schedule paused) are not: a pause
    is deliberate, and a beat down for longer than the grace period is what the watchdog
    reports while it happens."""
    items = [
        evaluate.Missing(r.schedule_id, r.note or "skipped by the overlap policy")
        for r in runs
        if r.status == Status.SKIPPED and r.schedule_id is not None
    ]
    if items:
        with transaction.atomic():
            evaluate.missed(items, get_clock().now())
