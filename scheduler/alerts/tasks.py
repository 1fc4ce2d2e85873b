"""The alert task: sends one recorded delivery, records how it went, and retries a failure with
exponential backoff (the catalog's own :func:`jobs_catalog.retry.backoff_delay`) until
``ALERTS_DELIVERY_ATTEMPTS`` attempts were made. It runs apart from every job, so a slow or
broken channel never holds up or fails a run.

A delivery is claimed before it is sent (``claimed_until``), so a task delivered twice, or
sent again by the watchdog's sweep, never sends one alert twice at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs_catalog.retry import backoff_delay
from scheduler import metrics
from scheduler.alerts.channels import channel_for
from scheduler.alerts.channels.base import safe_reason
from scheduler.alerts.messages import Alert
from scheduler.alerts.models import AlertChannel, AlertDelivery

logger = logging.getLogger(__name__)
Status = AlertDelivery.Status

TASK_NAME = "scheduler.alerts.deliver"
#: Seconds a claim lasts beyond the channel's own timeout.
CLAIM_MARGIN = 60.0
#: A pending delivery this much past its due time was never picked up (the broker was down
#: when it was queued, or its message was lost): the watchdog sends it again.
STALE_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent, failed, retry, skipped
    retry_in: float | None = None
    reason: str = ""


def send_delivery(delivery_id: int, now: datetime | None = None) -> Outcome:
    """Make one attempt at delivery ``delivery_id``."""
    now = now or timezone.now()
    delivery = (
        AlertDelivery.objects.select_related("channel")
        .filter(pk=delivery_id, status=Status.PENDING)
        .first()
    )
    if delivery is None:
        return Outcome("skipped", reason="not pending")
    outcome = _attempt(delivery, delivery_id, now)
    if outcome.status != "skipped":
        kind = delivery.channel.kind if delivery.channel is not None else "deleted"
        metrics.ALERT_DELIVERIES.labels(kind, outcome.status).inc()
    return outcome


def _attempt(delivery: AlertDelivery, delivery_id: int, now: datetime) -> Outcome:
    claimable = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    channel = delivery.channel
    timeout = channel.timeout if channel is not None else 0
    claimed = AlertDelivery.objects.filter(claimable, pk=delivery_id, status=Status.PENDING).update(
        claimed_until=now + timedelta(seconds=timeout + CLAIM_MARGIN),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return Outcome("skipped", reason="another task is sending it")
    delivery.refresh_from_db(fields=["attempts"])
    if channel is None or not channel.enabled:
        return _finish(delivery, Status.FAILED, "the channel was deleted or disabled")
    try:
        channel_for(channel).send(Alert.from_dict(delivery.payload), channel)
    except Exception as exc:
        reason = safe_reason(exc, channel)
        if delivery.attempts >= settings.ALERTS_DELIVERY_ATTEMPTS:
            logger.warning("alert delivery %s failed for good: %s", delivery.pk, reason)
            return _finish(delivery, Status.FAILED, reason)
        delay = backoff_delay(
            delivery.attempts,
            base=settings.ALERTS_DELIVERY_BACKOFF,
            cap=settings.ALERTS_DELIVERY_BACKOFF_CAP,
            jitter=True,
        )
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            last_error=reason,
            next_attempt_at=now + timedelta(seconds=delay),
            claimed_until=None,
        )
        logger.info("alert delivery %s failed (%s); retry in %.0f s", delivery.pk, reason, delay)
        return Outcome("retry", retry_in=delay, reason=reason)
    return _finish(delivery, Status.SENT, "", sent_at=now)


def _finish(
    delivery: AlertDelivery, status: str, reason: str, sent_at: datetime | None = None
) -> Outcome:
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status=status, last_error=reason, sent_at=sent_at, next_attempt_at=None, claimed_until=None
    )
    return Outcome(status, reason=reason)


@shared_task(name=TASK_NAME, bind=True, ignore_result=True, acks_late=True)
def deliver(self, delivery_id: int) -> str:
    outcome = send_delivery(delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status


def enqueue(ids: list[int]) -> None:
    """Queue the alert task for each delivery. A broker that is down loses nothing: the
    deliveries stay pending and the watchdog's sweep queues them again."""
    options = {"queue": settings.ALERTS_QUEUE} if settings.ALERTS_QUEUE else {}
    for delivery_id in ids:
        try:
            deliver.apply_async((delivery_id,), **options)
        except Exception:
            logger.exception("alert delivery %s not queued; the watchdog will retry", delivery_id)


def enqueue_after_commit(ids: list[int]) -> None:
    if ids:
        transaction.on_commit(lambda: enqueue(ids))


def sweep(now: datetime, limit: int = 500) -> int:
    """Queue again the pending deliveries nobody picked up in time."""
    stale = now - STALE_AFTER
    ids = list(
        AlertDelivery.objects.filter(status=Status.PENDING)
        .filter(
            Q(next_attempt_at__lt=stale) | Q(next_attempt_at__isnull=True, created_at__lt=stale)
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        # Moved on, so the next pass does not queue them again before they had a chance.
        AlertDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
        enqueue(ids)
    return len(ids)


def send_test(channel: AlertChannel, alert: Alert, now: datetime | None = None) -> AlertDelivery:
    """Send a test alert at once (the admin's action), recorded like any delivery."""
    delivery = AlertDelivery.objects.create(
        channel=channel,
        channel_name=channel.name,
        event=AlertDelivery.Event.TEST,
        payload=alert.to_dict(),
        created_at=now or timezone.now(),
    )
    send_delivery(delivery.pk, now=now)
    delivery.refresh_from_db()
    if delivery.status == Status.PENDING:  # a test is tried once, not retried
        AlertDelivery.objects.filter(pk=delivery.pk).update(status=Status.FAILED)
        delivery.refresh_from_db()
    return delivery
