"""From what happened to what the incidents do: each function reads what its rule needs,
asks :mod:`scheduler.alerts.rules`, and opens, counts or resolves through
:mod:`scheduler.alerts.incidents`. Callers hold the transaction.

Policies and channels are read from the database here, never from a cache: these functions
run only when something failed, is open, or the watchdog found something, and a channel or
policy just saved in any process must count at once. The channels are read at most once per
call (:class:`scheduler.alerts.effective.Channels`), and only if something is announced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.conf import settings

from scheduler.alerts import effective as config
from scheduler.alerts import messages, rules
from scheduler.alerts.incidents import (
    PLATFORM_MISSED,
    Announcement,
    Recipients,
    open_incident,
    resolve,
    schedule_key,
    touch,
)
from scheduler.alerts.models import AlertDelivery, Incident
from scheduler.runs.models import JobRun, first_attempt_id
from scheduler.schedules.models import Schedule

Kind = Incident.Kind
Event = AlertDelivery.Event
Action = rules.Action


@dataclass(frozen=True)
class Missing:
    """An occurrence of a schedule that did not start in time, and why."""

    schedule_id: int
    reason: str
    run_id: int | None = None


def _announcement(action: Action, policy: rules.Policy) -> Announcement | None:
    """What a rule's answer about an open incident announces, if anything."""
    if action is Action.REMIND:
        return Announcement(Event.REMINDER, policy.reminder_interval)
    if action is Action.ANNOUNCE:
        return Announcement(Event.OPENED)
    return None


def _to(channels: config.Channels, policy: rules.Policy) -> Recipients:
    return partial(channels.of, policy)


def failure_streak(schedule_id: int, threshold: int) -> int:
    """Failed occurrences in a row, newest first: one bounded walk of the schedule's index."""
    limit = min(1000, threshold * 10 + 20)
    rows = (
        JobRun.objects.filter(schedule_id=schedule_id)
        .order_by("-scheduled_for", "-id")
        .values_list("id", "occurrence_id", "status")[:limit]
    )
    return rules.consecutive_failures(
        (first_attempt_id(occurrence, pk), status) for pk, occurrence, status in rows
    )


def run_failed(run: JobRun, open_: dict[str, Incident], now: datetime) -> None:
    """An occurrence failed for good (its last attempt failed, timed out or was lost)."""
    schedule = run.schedule
    policy = config.policy_for(schedule.pk)
    incident = open_.get(Kind.FAILED)
    streak = 1
    if incident is None and policy.on_failure and policy.failure_threshold > 1:
        streak = failure_streak(schedule.pk, policy.failure_threshold)
    action = rules.after_failure(policy, streak, incident, now)
    if action is Action.NOTHING:
        return
    channels = _to(config.Channels(), policy)
    error = messages.run_error(run, schedule)
    if action is Action.OPEN:
        open_incident(
            key=schedule_key(schedule.pk, Kind.FAILED),
            kind=Kind.FAILED,
            schedule=schedule,
            title=messages.describe_failure(schedule, run, streak),
            now=now,
            channels=channels,
            error=error,
            run=run,
            count=streak,
        )
    else:
        touch(
            incident,
            now=now,
            channels=channels,
            error=error,
            run=run,
            announce=_announcement(action, policy),
        )


def run_succeeded(run: JobRun, open_: dict[str, Incident], now: datetime) -> None:
    """An occurrence succeeded: its schedule's failure and missed incidents are over."""
    over = [open_[kind] for kind in (Kind.FAILED, Kind.MISSED) if kind in open_]
    if not over:
        return
    policy, channels = config.policy_for(run.schedule_id), config.Channels()
    for incident in over:
        kind = incident.kind
        decision = rules.after_success(policy, incident)
        if decision.action is not Action.RESOLVE:
            continue
        what = "failure" if kind == Kind.FAILED else "missed occurrence"
        resolve(
            incident,
            now=now,
            resolution=(
                f"{run.schedule.name} succeeded again (run #{run.pk}) after "
                f"{incident.count} {what}{'s' if incident.count != 1 else ''}."
            ),
            announce=decision.announce,
            channels=_to(channels, policy),
            run=run,
        )


def run_ended(run: JobRun, open_: dict[str, Incident], now: datetime) -> None:
    """Any end of a run: a too-long incident about it is over."""
    incident = open_.get(Kind.TOO_LONG)
    if incident is None or not rules.too_long_over(incident, run.pk):
        return
    _too_long_over(incident, run, config.policy_for(run.schedule_id), now)


def _too_long_over(
    incident: Incident, run: JobRun | None, policy: rules.Policy, now: datetime
) -> bool:
    return resolve(
        incident,
        now=now,
        resolution=messages.describe_too_long_end(run),
        announce=policy.on_recovery,
        channels=_to(config.Channels(), policy),
        run=run,
    )


def missed(items: Iterable[Missing], now: datetime, *, more: bool = False) -> int:
    """Occurrences that did not start in time. Returns how many schedules it concerned
    (after their policies). Many schedules at once make one platform incident."""
    first: dict[int, Missing] = {}
    for item in items:
        first.setdefault(item.schedule_id, item)
    if not first:
        return 0
    policies = config.policies_for(first)
    wanted = {sid: item for sid, item in first.items() if policies[sid].on_missed}
    if not wanted:
        return 0
    open_ = {
        i.schedule_id: i
        for i in Incident.objects.filter(
            kind=Kind.MISSED, resolved_at__isnull=True, schedule_id__in=list(wanted)
        )
    }
    fresh = [sid for sid in wanted if sid not in open_]
    if rules.is_storm(len(fresh), settings.ALERTS_STORM_THRESHOLD):
        storm(len(fresh), now, more=more)
        fresh = []
    schedules = Schedule.objects.select_related("job").in_bulk(fresh)
    channels = config.Channels()
    for sid, item in wanted.items():
        policy = policies[sid]
        incident = open_.get(sid)
        if incident is None and sid not in schedules:
            continue
        action = rules.after_missed(policy, incident, now)
        if action is Action.OPEN:
            schedule = schedules[sid]
            open_incident(
                key=schedule_key(sid, Kind.MISSED),
                kind=Kind.MISSED,
                schedule=schedule,
                title=messages.describe_missed(schedule, item.reason),
                now=now,
                channels=_to(channels, policy),
                run_id=item.run_id,
            )
        elif action is not Action.NOTHING:
            touch(
                incident,
                now=now,
                channels=_to(channels, policy),
                run_id=item.run_id,
                announce=_announcement(action, policy),
            )
    return len(wanted)


def storm(count: int, now: datetime, *, more: bool = False) -> None:
    """Many schedules missing at once: one platform incident, to the default channels."""
    policy = config.defaults()
    channels = _to(config.Channels(), policy)
    title = messages.describe_storm(count, more)
    incident = Incident.objects.filter(key=PLATFORM_MISSED, resolved_at__isnull=True).first()
    if incident is None:
        open_incident(
            key=PLATFORM_MISSED,
            kind=Kind.MISSED,
            schedule=None,
            title=title,
            now=now,
            channels=channels,
            count=count,
        )
        return
    Incident.objects.filter(pk=incident.pk).update(title=title)
    announce = _announcement(rules.again(policy, incident, now), policy)
    touch(incident, now=now, channels=channels, count=count, announce=announce)


def storm_over(now: datetime) -> bool:
    """Nothing is missing any more: the platform incident (if open) is resolved."""
    incident = Incident.objects.filter(key=PLATFORM_MISSED, resolved_at__isnull=True).first()
    if incident is None:
        return False
    return resolve(
        incident,
        now=now,
        resolution="Runs start on time again.",
        announce=config.defaults().on_recovery,
        channels=config.default_channels,
    )


def too_long(runs: Iterable[JobRun], now: datetime) -> int:
    """Runs still running: those past their schedule's maximum runtime open (or count on) a
    too-long incident. Returns how many were too long."""
    oldest: dict[int, JobRun] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        oldest.setdefault(run.schedule_id, run)
    if not oldest:
        return 0
    policies = config.policies_for(oldest)
    over = {
        sid: run
        for sid, run in oldest.items()
        if run.started_at and rules.is_too_long(policies[sid], run.started_at, now)
    }
    if not over:
        return 0
    open_ = {
        i.schedule_id: i
        for i in Incident.objects.filter(
            kind=Kind.TOO_LONG, resolved_at__isnull=True, schedule_id__in=list(over)
        )
    }
    schedules = Schedule.objects.select_related("job").in_bulk(list(over))
    channels = config.Channels()
    for sid, run in over.items():
        schedule, policy, incident = schedules.get(sid), policies[sid], open_.get(sid)
        if schedule is None:
            continue
        run.schedule = schedule
        action = rules.after_too_long(policy, run.pk, incident, now)
        if action is Action.OPEN:
            open_incident(
                key=schedule_key(sid, Kind.TOO_LONG),
                kind=Kind.TOO_LONG,
                schedule=schedule,
                title=messages.describe_too_long(schedule, run, now, policy.max_runtime),
                now=now,
                channels=_to(channels, policy),
                run=run,
            )
        elif action is not Action.NOTHING:
            touch(
                incident,
                now=now,
                channels=_to(channels, policy),
                run=run,
                announce=_announcement(action, policy),
            )
    return len(over)


def too_long_gone(now: datetime) -> int:
    """Too-long incidents whose run is no longer running (it ended without a word, say its
    worker died) are resolved."""
    open_ = list(Incident.objects.filter(kind=Kind.TOO_LONG, resolved_at__isnull=True)[:1000])
    if not open_:
        return 0
    running = set(
        JobRun.objects.filter(
            pk__in=[i.last_run_id for i in open_ if i.last_run_id], status=JobRun.Status.RUNNING
        ).values_list("pk", flat=True)
    )
    done = 0
    for incident in open_:
        if incident.last_run_id in running:
            continue
        run = (
            JobRun.objects.filter(pk=incident.last_run_id).first() if incident.last_run_id else None
        )
        policy = (
            config.policy_for(incident.schedule_id) if incident.schedule_id else config.defaults()
        )
        done += _too_long_over(incident, run, policy, now)
    return done
