"""Incidents: open one, count one more, resolve, acknowledge; and announce what the rules say
to announce, as deliveries sent after the commit by the alert task.

An incident is marked notified (``last_notified_at``) only in the statement that goes with
recording its deliveries, one per channel that takes the announcement, in one transaction:
an incident no channel took keeps ``last_notified_at`` empty, says "notified nobody", and is
announced (as opened) at its next occurrence to the channels that apply then. The channels
come from the caller as a function, called only when something is to be announced.

Safe with several processes at once and without row locks: one open incident per key is a
unique constraint, counting is an ``UPDATE ... count + 1``, and a reminder or a resolution is
announced only by the process whose conditional UPDATE changed the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from scheduler.alerts import messages
from scheduler.alerts.channels import takes
from scheduler.alerts.models import AlertChannel, AlertDelivery, Incident
from scheduler.alerts.tasks import enqueue_after_commit
from scheduler.runs import events as run_events
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule

logger = logging.getLogger(__name__)
Kind = Incident.Kind
Event = AlertDelivery.Event

#: The key of the incident that stands for many schedules missing at once.
PLATFORM_MISSED = "platform:missed"

#: Where an incident's announcements go: called when one is about to be made, so the
#: channels are those that apply at that moment.
Recipients = Callable[[], list[AlertChannel]]


@dataclass(frozen=True)
class Announcement:
    """An open incident announced again: a reminder, once ``after`` seconds passed since it
    was last announced; or (``after`` None) its opening, late, because it notified nobody."""

    event: str
    after: int | None = None


def schedule_key(schedule_id: int, kind: str) -> str:
    return f"schedule:{schedule_id}:{kind}"


def open_incident(
    *,
    key: str,
    kind: str,
    schedule: Schedule | None,
    title: str,
    now: datetime,
    channels: Recipients,
    error: str = "",
    run: JobRun | None = None,
    run_id: int | None = None,
    count: int = 1,
) -> Incident:
    """Open the incident ``key`` and announce it; if another process just opened it, count
    this occurrence on that one instead. ``run`` (or only its id) is the run it is about."""
    run_id = run.pk if run is not None else run_id
    to = _taking(channels(), kind, Event.OPENED)
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                key=key,
                kind=kind,
                schedule=schedule,
                title=title[:300],
                last_error=error,
                count=count,
                opened_at=now,
                last_seen_at=now,
                first_run_id=run_id,
                last_run_id=run_id,
                last_notified_at=now if to else None,
            )
            _record(incident, Event.OPENED, to, run)
    except IntegrityError:
        existing = Incident.objects.filter(key=key, resolved_at__isnull=True).first()
        if existing is None:
            raise
        touch(existing, now=now, error=error, run=run, run_id=run_id, channels=channels)
        return existing
    return incident


def touch(
    incident: Incident,
    *,
    now: datetime,
    channels: Recipients,
    error: str = "",
    run: JobRun | None = None,
    run_id: int | None = None,
    announce: Announcement | None = None,
    count: int | None = None,
) -> bool:
    """Count one more occurrence on the open ``incident`` (or set ``count``); with
    ``announce``, announce it again if it is still due and a channel takes it. Returns
    whether it was announced."""
    fields: dict = {"last_seen_at": now, "count": F("count") + 1 if count is None else count}
    if error:
        fields["last_error"] = error
    if run is not None or run_id is not None:
        fields["last_run_id"] = run.pk if run is not None else run_id
    to: list[AlertChannel] = []
    if announce is not None:
        to = _taking(channels(), incident.kind, announce.event)
    with transaction.atomic(savepoint=False):
        Incident.objects.filter(pk=incident.pk).update(**fields)
        if to:
            due = Q(last_notified_at__isnull=True)
            if announce.after is not None:
                due |= Q(last_notified_at__lte=now - _s(announce.after))
            claimed = Incident.objects.filter(due, pk=incident.pk, acknowledged_at__isnull=True)
            to = to if claimed.update(last_notified_at=now) else []
        incident.refresh_from_db()
        if to:
            _record(incident, announce.event, to, run)
    return bool(to)


def resolve(
    incident: Incident,
    *,
    now: datetime,
    resolution: str,
    announce: bool,
    channels: Recipients,
    run: JobRun | None = None,
) -> bool:
    """Resolve ``incident`` (if still open) and, if ``announce``, say so. Returns whether
    this call resolved it."""
    to = _taking(channels(), incident.kind, Event.RESOLVED) if announce else []
    fields: dict = {"resolved_at": now, "resolution": resolution[:2000]}
    if to:
        fields["last_notified_at"] = now
    with transaction.atomic(savepoint=False):
        done = Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(**fields)
        if not done:
            return False
        incident.refresh_from_db()
        _record(incident, Event.RESOLVED, to, run)
    return True


def acknowledge(incidents: Iterable[Incident], user: object, now: datetime) -> int:
    """Mark open incidents acknowledged: someone is on it, so no reminders."""
    ids = [i.pk for i in incidents]
    return Incident.objects.filter(
        pk__in=ids, resolved_at__isnull=True, acknowledged_at__isnull=True
    ).update(acknowledged_at=now, acknowledged_by=user)


def _taking(channels: list[AlertChannel], kind: str, event: str) -> list[AlertChannel]:
    return [channel for channel in channels if takes(channel, kind, event)]


def _record(
    incident: Incident, event: str, channels: list[AlertChannel], run: JobRun | None
) -> list[AlertDelivery]:
    """Record one delivery per channel (each takes this alert); the alert task sends them
    once the surrounding transaction commits (never from inside a job)."""
    if not channels:
        return []
    payload = messages.for_incident(incident, event, run).to_dict()
    deliveries = [
        AlertDelivery(
            incident=incident,
            channel=channel,
            channel_name=channel.name,
            event=event,
            payload=payload,
        )
        for channel in channels
    ]
    AlertDelivery.objects.bulk_create(deliveries)
    created = [d for d in deliveries if d.pk is not None]
    if len(created) < len(deliveries):  # a backend that does not return ids: read them back
        created = list(AlertDelivery.objects.filter(incident=incident, event=event, sent_at=None))
    enqueue_after_commit([d.pk for d in created])
    logger.info("alert %s: %s %s to %d channel(s)", incident.pk, event, incident.kind, len(created))
    return created


def any_open(schedule_id: int) -> bool:
    """Whether schedule ``schedule_id`` has an open incident: the one read a run that needs no
    alert costs (in a worker, in the round trip that also confirms the run's end)."""
    sql = (
        f"SELECT EXISTS (SELECT 1 FROM {Incident._meta.db_table}"
        " WHERE schedule_id = %s AND resolved_at IS NULL)"
    )
    row = run_events.read_now(sql, [schedule_id])
    return bool(row and row[0])


def open_of(schedule_id: int) -> dict[str, Incident]:
    """The open incidents of schedule ``schedule_id``, by kind: one read of the partial index
    of open incidents."""
    return {i.kind: i for i in Incident.objects.filter(schedule_id=schedule_id, resolved_at=None)}


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
