"""The callback task: one attempt at one recorded callback, retried with exponential backoff
until ``CALLBACK_DELIVERY_ATTEMPTS`` attempts were made (the machinery is
:mod:`scheduler.alerts.deliveries`, as for alerts). It runs on ``ALERTS_QUEUE``, apart from
every job: a slow or broken receiver never holds up or fails a run.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings
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


# max_retries=None: the record counts the attempts and gives up (Celery's own limit of 3
# would end the 5th attempt with MaxRetriesExceededError, leaving the record to the sweep).
@shared_task(name=TASK_NAME, bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver_callback(self, delivery_id: int) -> str:
    return deliveries.task_result(self, send_callback(delivery_id))


queueing = deliveries.Queueing(deliver_callback, CallbackDelivery, WHAT)
enqueue = queueing.enqueue
enqueue_after_commit = queueing.enqueue_after_commit
sweep = queueing.sweep
