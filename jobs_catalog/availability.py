"""Whether each job of the mirror can run, from what the live workers reported.

A job is available when at least one live worker (heartbeat seen within
``JOBS_CATALOG_HEARTBEAT`` x :data:`STALE_AFTER_HEARTBEATS` seconds) loaded it; when none did,
the reason names each live worker and why it could not. With no live worker at all (the web
process alone, before workers start), the code found by the last process that mirrored the
catalog decides. So no single process, whatever its settings, hides a job from everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from jobs_catalog.models import CatalogWorker, JobDefinition

#: A worker unseen for this many heartbeats is taken for gone (one late beat is not enough).
STALE_AFTER_HEARTBEATS = 3


def stale_after() -> timedelta:
    return timedelta(seconds=settings.JOBS_CATALOG_HEARTBEAT * STALE_AFTER_HEARTBEATS)


def live_workers(now: datetime | None = None, using: str = "default") -> list[CatalogWorker]:
    now = now or timezone.now()
    return list(CatalogWorker.objects.using(using).filter(last_seen__gte=now - stale_after()))


def availability(definition: JobDefinition, workers: Sequence[CatalogWorker]) -> tuple[bool, str]:
    """(available, reason when not) of one job, given the live workers."""
    if not workers:
        return not definition.code_problem, definition.code_problem
    if any(definition.name in worker.loaded for worker in workers):
        return True, ""
    return False, "; ".join(
        f"{worker.hostname}: {worker.reason_missing(definition.name, definition.module)}"
        for worker in workers
    )


def refresh_availability(now: datetime | None = None, using: str = "default") -> list[str]:
    """Bring every row's availability in line with the live workers; only rows whose value
    changes are written. Returns the names that became unavailable."""
    now = now or timezone.now()
    workers = live_workers(now, using)
    lost = []
    rows = JobDefinition.objects.using(using).only(
        "name", "module", "code_problem", "available", "unavailable_reason"
    )
    for row in rows:
        available, reason = availability(row, workers)
        if (row.available, row.unavailable_reason) == (available, reason):
            continue
        if row.available and not available:
            lost.append(row.name)
        JobDefinition.objects.using(using).filter(pk=row.pk).update(
            available=available, unavailable_reason=reason, changed_at=now
        )
    return lost
