"""Each worker records in the database what it can run (:class:`CatalogWorker`): at start,
then a heartbeat every ``JOBS_CATALOG_HEARTBEAT`` seconds from a thread of its main process,
and the row goes when it stops cleanly. A worker killed outright is forgotten once its
heartbeat is stale (:mod:`jobs_catalog.availability`).

A thread rather than a Celery timer: a slow database must not stall the worker's event loop.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from jobs_catalog.availability import live_workers, refresh_availability
from jobs_catalog.models import CatalogWorker
from jobs_catalog.registry import Registry
from jobs_catalog.registry import registry as default_registry
from jobs_catalog.sync import sync_job_definitions

logger = logging.getLogger(__name__)

_heartbeat_thread: HeartbeatThread | None = None


def record(
    hostname: str,
    registry: Registry = default_registry,
    now: datetime | None = None,
    using: str = "default",
) -> CatalogWorker:
    """Write (or rewrite) what the worker ``hostname`` can run, as its ``registry`` says."""
    now = now or timezone.now()
    worker, _ = CatalogWorker.objects.using(using).update_or_create(
        hostname=hostname,
        defaults={
            "loaded": [job.name for job in registry],
            "refused": {name: problem.message for name, (_, problem) in registry.refused.items()},
            "broken_modules": {
                module: problem.message for module, problem in registry.broken_modules().items()
            },
            "started_at": now,
            "last_seen": now,
        },
    )
    return worker


def announce(hostname: str, registry: Registry = default_registry) -> Heartbeat:
    """A worker starts: record what it can run, describe the catalog it found, and return its
    heartbeat (already beaten once, so availability is up to date)."""
    record(hostname, registry)
    sync_job_definitions(registry)
    heartbeat = Heartbeat(hostname, registry)
    heartbeat.beat()
    return heartbeat


def forget(hostname: str, using: str = "default") -> None:
    """The worker stops: it no longer makes anything available."""
    CatalogWorker.objects.using(using).filter(hostname=hostname).delete()
    refresh_availability(using=using)


class Heartbeat:
    """One worker's heartbeat. Availability is recomputed only when the set of live workers
    changed since this worker last looked, so a quiet platform costs two small queries a beat."""

    def __init__(self, hostname: str, registry: Registry = default_registry):
        self.hostname = hostname
        self.registry = registry
        self._view: frozenset[tuple[str, datetime]] | None = None

    def beat(self, now: datetime | None = None, using: str = "default") -> None:
        now = now or timezone.now()
        seen = CatalogWorker.objects.using(using).filter(hostname=self.hostname)
        if not seen.update(last_seen=now):
            record(self.hostname, self.registry, now, using)  # its row was removed meanwhile
        view = frozenset((w.hostname, w.started_at) for w in live_workers(now, using))
        if view != self._view:
            refresh_availability(now, using)
            self._view = view


class HeartbeatThread(threading.Thread):
    def __init__(self, heartbeat: Heartbeat, interval: float):
        super().__init__(name="catalog-heartbeat", daemon=True)
        self.heartbeat = heartbeat
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.heartbeat.beat()
            except Exception:
                logger.exception("job catalog: heartbeat failed; trying again next time")
            finally:
                connections.close_all()  # this thread's own; the next beat opens fresh ones

    def stop(self) -> None:
        self.stopping.set()


def start_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """``worker_ready`` (in the worker's main process): record this worker, describe the
    catalog, and start the heartbeat."""
    global _heartbeat_thread
    hostname = getattr(sender, "hostname", None) or "worker"
    try:
        heartbeat = announce(hostname)
    except Exception:  # an unmigrated database must not keep a worker from starting
        logger.exception("job catalog: could not record this worker's catalog")
        heartbeat = Heartbeat(hostname)  # its first beat records it, once the database works
    if _heartbeat_thread is None:
        _heartbeat_thread = HeartbeatThread(heartbeat, settings.JOBS_CATALOG_HEARTBEAT)
        _heartbeat_thread.start()


def stop_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """``worker_shutdown``: stop the heartbeat and take this worker out of the catalog."""
    global _heartbeat_thread
    if _heartbeat_thread is None:
        return
    _heartbeat_thread.stop()
    hostname = _heartbeat_thread.heartbeat.hostname
    _heartbeat_thread = None
    try:
        forget(hostname)
    except Exception:
        logger.exception("job catalog: could not remove this worker's catalog")
