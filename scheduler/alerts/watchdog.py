"""The watchdog's checks: runs that did not start in time, and runs running too long. One pass
is a handful of indexed reads whatever the number of schedules:

- beat entries due more than the grace period ago (``beatentry_due``): beat is not running,
  or is far behind;
- occurrences still pending or queued past their time plus the grace period
  (``run_status_recent``): the queue is backed up, or no worker takes it;
- runs running longer than a maximum runtime (``run_running``);
- too-long incidents whose run ended unannounced; deliveries (alerts, callbacks) nobody sent.

Each read is first cut at the shortest grace (or maximum runtime) any schedule has, then each
row is held against its own schedule's. See :mod:`scheduler.alerts.watchdog_runner` for who
runs it and when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from scheduler.alerts import effective as config
from scheduler.alerts import evaluate, rules, tasks
from scheduler.alerts.callbacks import tasks as callback_tasks
from scheduler.alerts.models import Incident
from scheduler.policies.jitter import jitter_offset
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule

logger = logging.getLogger(__name__)
Status = JobRun.Status

#: Rows each check reads per pass, at most.
BATCH = 1000


@dataclass
class Report:
    overdue: int = 0  # schedules whose beat entry is overdue
    unstarted: int = 0  # schedules with an occurrence not started in time
    alerted_missed: int = 0
    too_long: int = 0
    resolved: int = 0
    requeued: int = 0


def run_checks(now: datetime) -> Report:
    report = Report()
    grace = config.min_grace()
    overdue = _overdue_entries(now, grace)
    unstarted = _unstarted_runs(now, grace)
    report.overdue, report.unstarted = len(overdue), len(unstarted)
    with transaction.atomic():
        if overdue or unstarted:
            already = set(
                Incident.objects.filter(
                    kind=Incident.Kind.MISSED,
                    resolved_at__isnull=True,
                    schedule_id__in=list({*overdue, *unstarted}),
                ).values_list("schedule_id", flat=True)
            )
            # Seen again on every pass while it lasts: only the new ones count.
            fresh = [m for sid, m in {**unstarted, **overdue}.items() if sid not in already]
            more = len(overdue) >= BATCH or len(unstarted) >= BATCH
            report.alerted_missed = evaluate.missed(fresh, now, more=more)
        else:
            report.resolved += evaluate.storm_over(now)
    with transaction.atomic():
        report.too_long = evaluate.too_long(_running_long(now), now)
        report.resolved += evaluate.too_long_gone(now)
    swept_at = timezone.now()
    report.requeued = tasks.sweep(swept_at) + callback_tasks.sweep(swept_at)
    return report


def _overdue_entries(now: datetime, min_grace: int) -> dict[int, evaluate.Missing]:
    # Beat's index of due times, read through the schedule's cron entry (alerting imports
    # nothing from beat): the join is the same, from the indexed due_at.
    due_at = "periodic_task__beat_entry__due_at"
    rows = list(
        Schedule.objects.filter(
            **{f"{due_at}__lt": now - timedelta(seconds=min_grace)},
            # Paused while beat was down: beat has not cleared the entry yet.
            periodic_task__enabled=True,
        )
        .order_by(due_at)
        .values_list("id", due_at)[:BATCH]
    )
    if not rows:
        return {}
    policies = config.policies_for({sid for sid, _ in rows})
    out = {}
    for sid, due_at in rows:
        policy = policies[sid]
        if policy.on_missed and rules.is_late(due_at, now, policy.grace):
            late = int((now - due_at).total_seconds())
            out[sid] = evaluate.Missing(
                sid,
                f"due at {due_at:%Y-%m-%d %H:%M:%S} UTC and not started {late} s later "
                "(is beat running?)",
            )
    return out


def _unstarted_runs(now: datetime, min_grace: int) -> dict[int, evaluate.Missing]:
    """First attempts still pending or queued past their time. A run asked for later than
    its time (run now, backfill) is late from when it was asked for; retries follow their
    own backoff and are not counted here."""
    cut = now - timedelta(seconds=min_grace)
    rows = list(
        JobRun.objects.filter(
            status__in=[Status.PENDING, Status.QUEUED],
            scheduled_for__lt=cut,
            created_at__lt=cut,
            attempt=1,
            schedule__isnull=False,
        )
        .order_by("-scheduled_for")
        .values_list("id", "schedule_id", "scheduled_for", "created_at", "status")[:BATCH]
    )
    if not rows:
        return {}
    ids = {row[1] for row in rows}
    policies = config.policies_for(ids)
    jitters = dict(Schedule.objects.filter(pk__in=ids, jitter__gt=0).values_list("pk", "jitter"))
    out = {}
    for pk, sid, scheduled_for, created_at, status in rows:
        policy = policies[sid]
        offset = jitter_offset(sid, jitters[sid]) if sid in jitters else timedelta(0)
        if sid in out or not policy.on_missed:
            continue
        asked = max(scheduled_for + offset, created_at)
        if rules.is_late(asked, now, policy.grace):
            where = "waits in the queue" if status == Status.QUEUED else "was never sent"
            out[sid] = evaluate.Missing(
                sid,
                f"the occurrence of {scheduled_for:%Y-%m-%d %H:%M:%S} UTC {where} "
                "(is a worker taking this queue?)",
                pk,
            )
    return out


def _running_long(now: datetime) -> list[JobRun]:
    shortest = config.min_max_runtime()
    if not shortest:
        return []
    return list(
        JobRun.objects.filter(
            status=Status.RUNNING,
            started_at__lt=now - timedelta(seconds=shortest),
            schedule__isnull=False,
        )
        .order_by("started_at")
        .only(
            "id", "schedule_id", "started_at", "finished_at", "scheduled_for", "status", "attempt"
        )[:BATCH]
    )
