"""Who runs the watchdog, and when: every worker (a thread of its main process) and beat (from
its loop) offer to, every ``ALERTS_WATCHDOG_INTERVAL`` seconds; a lease row in the database
lets one of them run each pass. So it runs while beat is down (the workers do) and while no
worker runs (beat does), and nobody has to schedule it.

The lease is a conditional UPDATE of one row (``next_run_at <= now``), on any database, held
for no longer than that statement: a pass that overlaps another does no harm (opening an
incident is idempotent), the lease only saves the work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from scheduler import metrics
from scheduler.alerts import watchdog
from scheduler.alerts.models import WatchdogLease
from scheduler.clock import Clock, get_clock

logger = logging.getLogger(__name__)

LEASE = "watchdog"
_next_try = 0.0
_thread: WatchdogThread | None = None


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(name: str, seconds: float, now: datetime) -> bool:
    """Take the lease ``name`` for ``seconds`` if it is free (real time, whatever clock the
    checks use: it coordinates processes)."""
    until = now + timedelta(seconds=seconds)
    fields = {"next_run_at": until, "holder": holder(), "last_run_at": now}
    if WatchdogLease.objects.filter(name=name, next_run_at__lte=now).update(**fields):
        return True
    if WatchdogLease.objects.filter(name=name).exists():
        return False
    try:
        with transaction.atomic():
            WatchdogLease.objects.create(name=name, **fields)
    except IntegrityError:
        return False
    return True


def maybe_run(clock: Clock | None = None) -> watchdog.Report | None:
    """Run a watchdog pass if this process's turn has come and it gets the lease. Never
    raises: it runs inside beat's loop and a worker's thread."""
    global _next_try
    interval = settings.ALERTS_WATCHDOG_INTERVAL
    if interval <= 0:
        return None
    monotonic = time.monotonic()
    if monotonic < _next_try:
        return None
    _next_try = monotonic + interval * 0.9
    try:
        if not acquire(LEASE, interval * 0.9, timezone.now()):
            return None
        with metrics.WATCHDOG_PASS.time():
            report = watchdog.run_checks((clock or get_clock()).now())
    except Exception:
        logger.exception("alerts watchdog: the pass failed; trying again next time")
        return None
    if report.alerted_missed or report.too_long or report.resolved or report.requeued:
        logger.info("alerts watchdog: %s", report)
    return report


def offer_in_beat(sender: Any = None, clock: Clock | None = None, **kwargs: Any) -> None:
    """Beat's ``loop_turned``: beat offers to run a pass at each turn of its loop, by its
    own clock."""
    maybe_run(clock)


class WatchdogThread(threading.Thread):
    """A worker's watchdog: offers to run a pass every interval until stopped."""

    def __init__(self, interval: float):
        super().__init__(name="alerts-watchdog", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            maybe_run()
            connections.close_all()  # this thread's own; the next pass opens fresh ones

    def stop(self) -> None:
        self.stopping.set()


def start_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """``worker_ready``: start the worker's watchdog thread."""
    global _thread
    interval = settings.ALERTS_WATCHDOG_INTERVAL
    if interval <= 0 or _thread is not None:
        return
    _thread = WatchdogThread(interval)
    _thread.start()
    logger.info("alerts watchdog: offering to run every %s s", interval)


def stop_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """``worker_shutdown``."""
    global _thread
    if _thread is not None:
        _thread.stop()
        _thread = None
