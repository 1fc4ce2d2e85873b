"""The alert task: sends one recorded delivery, records how it went, and retries a failure with
exponential backoff until ``ALERTS_DELIVERY_ATTEMPTS`` attempts were made (the machinery is
:mod:`scheduler.alerts.deliveries`). It runs apart from every job, so a slow or broken
channel never holds up or fails a run.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from scheduler import metrics
from scheduler.alerts import deliveries
from scheduler.alerts.channels import channel_for
from scheduler.alerts.channels.base import DeliveryError, safe_reason
from scheduler.alerts.deliveries import Outcome
from scheduler.alerts.messages import Alert
from scheduler.alerts.models import AlertChannel, AlertDelivery

Status = AlertDelivery.Status

TASK_NAME = "scheduler.alerts.deliver"
WHAT = "alert delivery"


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
    channel = delivery.channel
    outcome = deliveries.attempt(
        delivery,
        now,
        timeout=channel.timeout if channel is not None else 0,
        retries=deliveries.Retries(
            settings.ALERTS_DELIVERY_ATTEMPTS,
            settings.ALERTS_DELIVERY_BACKOFF,
            settings.ALERTS_DELIVERY_BACKOFF_CAP,
        ),
        send=_send,
        reason=lambda exc: safe_reason(exc, channel) if channel is not None else str(exc),
        what=WHAT,
    )
    if outcome.status != "skipped":
        kind = channel.kind if channel is not None else "deleted"
        metrics.ALERT_DELIVERIES.labels(kind, outcome.status).inc()
    return outcome


def _send(delivery: AlertDelivery) -> None:
    channel = delivery.channel
    if channel is None or not channel.enabled:
        raise DeliveryError("the channel was deleted or disabled", final=True)
    channel_for(channel).send(Alert.from_dict(delivery.payload), channel)


# max_retries=None: the record counts the attempts and gives up (Celery's own limit of 3
# would end the 5th attempt with MaxRetriesExceededError, leaving the record to the sweep).
@shared_task(name=TASK_NAME, bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver(self, delivery_id: int) -> str:
    return deliveries.task_result(self, send_delivery(delivery_id))


queueing = deliveries.Queueing(deliver, AlertDelivery, WHAT)
enqueue = queueing.enqueue
enqueue_after_commit = queueing.enqueue_after_commit
sweep = queueing.sweep


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
