"""Sending a recorded message (an alert, a completion callback), whatever it is: one attempt
claimed before it is sent, its failure retried with exponential backoff (the catalog's own
:func:`jobs_catalog.retry.backoff_delay`) until its attempts are spent, a failure that no
retry can mend (:class:`DeliveryError` with ``final``) given up at once, and a sweep that
queues again what nobody picked up (:class:`Queueing`).

The claim (``claimed_until``) makes one delivery go out once at a time, whether its task is
delivered twice or the sweep sends it again meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from jobs_catalog.retry import backoff_delay
from scheduler.alerts.channels.base import DeliveryError
from scheduler.alerts.models import Delivery

logger = logging.getLogger(__name__)
Status = Delivery.Status
D = TypeVar("D", bound=Delivery)

#: Seconds a claim lasts beyond the sender's own timeout.
CLAIM_MARGIN = 60.0
#: A pending delivery this much past its due time was never picked up (the broker was down
#: when it was queued, or its message was lost): the sweep queues it again.
STALE_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent, failed, retry, skipped
    retry_in: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Retries:
    """How often and how far apart one kind of delivery is tried."""

    attempts: int
    backoff: float
    backoff_cap: float


def attempt(
    delivery: D,
    now: datetime,
    *,
    timeout: float,
    retries: Retries,
    send: Callable[[D], Mapping[str, Any] | None],
    reason: Callable[[BaseException], str],
    what: str,
) -> Outcome:
    """Make one attempt at ``delivery`` (read pending): claim it for ``timeout`` seconds
    plus a margin, ``send`` it (what it returns is recorded with the success; a
    :class:`DeliveryError`'s ``fields`` with the failure) and record how it went. ``reason``
    says why an exception failed it, fit to show (no secrets); ``what`` names it in logs."""
    model = type(delivery)
    claimable = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = model.objects.filter(claimable, pk=delivery.pk, status=Status.PENDING).update(
        claimed_until=now + timedelta(seconds=timeout + CLAIM_MARGIN),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return Outcome("skipped", reason="another task is sending it")
    delivery.refresh_from_db(fields=["attempts"])
    try:
        recorded = send(delivery) or {}
    except Exception as exc:
        why = reason(exc)
        fields = dict(exc.fields) if isinstance(exc, DeliveryError) else {}
        final = isinstance(exc, DeliveryError) and exc.final
        if final or delivery.attempts >= retries.attempts:
            logger.warning("%s %s failed for good: %s", what, delivery.pk, why)
            return finish(delivery, Status.FAILED, why, **fields)
        delay = backoff_delay(
            delivery.attempts, base=retries.backoff, cap=retries.backoff_cap, jitter=True
        )
        model.objects.filter(pk=delivery.pk).update(
            last_error=why,
            next_attempt_at=now + timedelta(seconds=delay),
            claimed_until=None,
            **fields,
        )
        logger.info("%s %s failed (%s); retry in %.0f s", what, delivery.pk, why, delay)
        return Outcome("retry", retry_in=delay, reason=why)
    return finish(delivery, Status.SENT, "", sent_at=now, **recorded)


def finish(delivery: Delivery, status: str, reason: str, **fields: Any) -> Outcome:
    """Record ``delivery`` over: sent, or failed for ``reason``."""
    type(delivery).objects.filter(pk=delivery.pk).update(
        status=status, last_error=reason, next_attempt_at=None, claimed_until=None, **fields
    )
    return Outcome(status, reason=reason)


@dataclass(frozen=True)
class Queueing:
    """How one kind of delivery reaches its task (``ALERTS_QUEUE``): queued after the commit
    that records it, and queued again by the watchdog's sweep when nobody picked it up."""

    task: Any
    model: type[Delivery]
    what: str

    def enqueue(self, ids: list[int]) -> None:
        """Queue the task for each delivery. A broker that is down loses nothing: the
        deliveries stay pending and the sweep queues them again."""
        queue = settings.ALERTS_QUEUE
        options = {"queue": queue} if queue else {}
        for delivery_id in ids:
            try:
                self.task.apply_async((delivery_id,), **options)
            except Exception:
                logger.exception("%s %s not queued; the sweep will", self.what, delivery_id)

    def enqueue_after_commit(self, ids: list[int]) -> None:
        if ids:
            transaction.on_commit(lambda: self.enqueue(ids))

    def sweep(self, now: datetime, limit: int = 500) -> int:
        """Queue again the pending deliveries nobody picked up in time, moved on first (so
        the next pass does not take them again before they had a chance)."""
        cut = now - STALE_AFTER
        ids = list(
            self.model.objects.filter(status=Status.PENDING)
            .filter(
                Q(next_attempt_at__lt=cut) | Q(next_attempt_at__isnull=True, created_at__lt=cut)
            )
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("created_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            self.model.objects.filter(pk__in=ids).update(next_attempt_at=now)
            self.enqueue(ids)
        return len(ids)


def task_result(task: Any, outcome: Outcome) -> str:
    """What a delivery task returns after ``outcome``; a retry is the task's own, after the
    backoff (the record keeps the count of attempts: the tasks set no Celery limit)."""
    if outcome.retry_in is not None:
        raise task.retry(countdown=outcome.retry_in)
    return outcome.status
