"""The callback task: one attempt at one recorded callback, retried with exponential backoff
until ``CALLBACK_DELIVERY_ATTEMPTS`` attempts were made (the machinery is
:mod:`scheduler.alerts.deliveries`, as for alerts). It runs on ``ALERTS_QUEUE``, apart from
every job: a slow or broken receiver never holds up or fails a run.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scheduler import metrics
from scheduler.alerts import deliveries
from scheduler.alerts.callbacks import send
from scheduler.alerts.deliveries import Outcome
from scheduler.alerts.models import CallbackDelivery

TASK_NAME = "scheduler.alerts.callback"
WHAT = "callback"


def send_callback(delivery_id: int, now: datetime | None = None) -> Outcome:
    """Make one attempt at callback ``delivery_id``."""
    now = now or timezone.now()
    delivery = (
        CallbackDelivery.objects.select_related("channel")
        .filter(pk=delivery_id, status=CallbackDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return Outcome("skipped", reason="not pending")
    outcome = deliveries.attempt(
        delivery,
        now,
        timeout=send.timeout_of(delivery),
        retries=deliveries.Retries(
            settings.CALLBACK_DELIVERY_ATTEMPTS,
            settings.CALLBACK_DELIVERY_BACKOFF,
            settings.CALLBACK_DELIVERY_BACKOFF_CAP,
        ),
        send=send.post,
        reason=lambda exc: send.safe_reason(exc, delivery),
        what=WHAT,
    )
    if outcome.status != "skipped":
        metrics.CALLBACK_DELIVERIES.labels(delivery.target, outcome.status).inc()
    return outcome


@shared_task(name=TASK_NAME, bind=True, ignore_result=True, acks_late=True)
def deliver_callback(self, delivery_id: int) -> str:
    outcome = send_callback(delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status


def enqueue(ids: list[int]) -> None:
    deliveries.enqueue(deliver_callback, ids, settings.ALERTS_QUEUE, WHAT)


def enqueue_after_commit(ids: list[int]) -> None:
    if ids:
        transaction.on_commit(lambda: enqueue(ids))


def sweep(now: datetime, limit: int = 500) -> int:
    """Queue again the pending callbacks nobody picked up in time (the watchdog's pass)."""
    ids = deliveries.stale(CallbackDelivery, now, limit)
    enqueue(ids)
    return len(ids)
