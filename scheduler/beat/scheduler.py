"""The beat scheduler: ``celery -A config beat -S scheduler.beat:DatabaseScheduler``.

A drop-in for ``django_celery_beat.schedulers:DatabaseScheduler``: it schedules every enabled
PeriodicTask (crontab, interval, clocked, one_off, start_time, expires), but finds due work by
an indexed next-fire time, recomputes only rows that changed, commits each occurrence before
publishing it, and may run several times at once on PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.beat import Scheduler
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.utils import DatabaseError, InterfaceError
from django_celery_beat.schedulers import ModelEntry

from scheduler.beat import events as beat_events
from scheduler.beat.changes import ChangeFeed
from scheduler.beat.dispatch import Dispatcher
from scheduler.beat.entries import reconcile
from scheduler.beat.locking import SingleBeatLock
from scheduler.clock import FileClock, get_clock
from scheduler.runs import reaper
from scheduler.runs.publisher import InlinePublisher, ProcessPublisher, Publisher

logger = logging.getLogger(__name__)

#: Seconds between sweeps for unpublished or buffered occurrences.
SWEEP_EVERY = 5.0
#: The longest beat sleeps: it wakes earlier for due work or (via LISTEN) for a change.
MAX_WAIT = 5.0
#: After a database error, wait this long before trying again.
ERROR_BACKOFF = 1.0
#: The longest beat sleeps while messages are held or being sent.
BUSY_WAIT = 0.1


def make_publisher(app: Any) -> Publisher:
    """``SCHEDULER_PUBLISHERS`` publisher processes, or sending from beat itself (0)."""
    processes = settings.SCHEDULER_PUBLISHERS
    return ProcessPublisher(app, processes) if processes > 0 else InlinePublisher(app)


class DatabaseScheduler(Scheduler):
    max_interval = MAX_WAIT

    def __init__(self, *args: Any, **kwargs: Any):
        self.clock = get_clock()
        self.feed: ChangeFeed | None = None
        self.lock: SingleBeatLock | None = None
        self.dispatcher: Dispatcher | None = None
        self._next_sweep = 0.0
        self._next_prune = 0.0
        super().__init__(*args, **kwargs)

    # --- startup ---------------------------------------------------------------------------
    def setup_schedule(self) -> None:
        # Publishers are forked first, while beat holds no listening connection and has
        # not begun watching for changes.
        publisher = make_publisher(self.app)
        if connection.vendor == "sqlite":
            self.lock = SingleBeatLock(Path(settings.DATA_DIR) / "beat.lock")
            self.lock.acquire()
        self.install_default_entries(self.app.conf.beat_schedule or {})
        self.update_from_dict(self.app.conf.beat_schedule or {})
        self.feed = ChangeFeed()
        self.feed.start()  # before the full reconcile: changes made during it are seen next
        changed = reconcile(self.clock.now())
        self.dispatcher = Dispatcher(
            self.app,
            self.clock,
            publisher=publisher,
            lookahead=timedelta(seconds=settings.SCHEDULER_LOOKAHEAD),
        )
        republished = self.dispatcher.sweep(min_age=timedelta(0))
        logger.info(
            "beat: %d entries updated at start; %d unpublished occurrence(s) republished",
            changed,
            republished,
        )

    def update_from_dict(self, mapping: dict) -> None:
        # Entries from CELERY_BEAT_SCHEDULE become PeriodicTask rows, as the stock scheduler
        # does (its own converter is reused so both agree on the row format).
        for name, entry in mapping.items():
            try:
                ModelEntry.from_entry(name, app=self.app, **entry)
            except Exception:
                logger.exception("beat: cannot add %r from CELERY_BEAT_SCHEDULE", name)

    # --- the loop ----------------------------------------------------------------------------
    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return self._tick()
        except (DatabaseError, InterfaceError):
            logger.exception("beat: database error; retrying in %ss", ERROR_BACKOFF)
            close_old_connections()
            connection.close()
            return ERROR_BACKOFF

    def _tick(self) -> float:
        assert self.feed is not None and self.dispatcher is not None
        changed = self.feed.poll()
        if changed:
            reconcile(self.clock.now(), changed)
        self.dispatcher.run_due()
        self.dispatcher.mark_published()
        monotonic = time.monotonic()
        if monotonic >= self._next_sweep:
            self.dispatcher.sweep()
            self._next_sweep = monotonic + SWEEP_EVERY
        reaper.tick(self.app, self.clock)
        if monotonic >= self._next_prune:
            self.feed.prune()
            self._next_prune = monotonic + 600
        beat_events.loop_turned.send(type(self), clock=self.clock)  # alerting's watchdog
        self.feed.wait(self._wait_time())
        return 0.0

    def _wait_time(self) -> float:
        assert self.dispatcher is not None
        limit = 0.2 if isinstance(self.clock, FileClock) else MAX_WAIT
        if self.dispatcher.busy:  # come back soon to mark what the publishers sent
            limit = min(limit, BUSY_WAIT)
        next_due = self.dispatcher.next_due()
        if next_due is None:
            return limit
        return max(0.0, min(limit, (next_due - self.clock.now()).total_seconds()))

    # --- what celery beat asks of a scheduler ------------------------------------------------
    @property
    def schedule(self) -> dict:
        return {}

    def sync(self) -> None:
        """Nothing to sync: every decision is committed as it is taken."""

    def close(self) -> None:
        if self.dispatcher is not None:
            try:
                self.dispatcher.close()
            except Exception:  # what was not marked is republished by the next sweep
                logger.exception("beat: could not finish publishing at shutdown")
        if self.feed is not None:
            self.feed.close()
        if self.lock is not None:
            self.lock.release()

    @property
    def info(self) -> str:
        return f"indexed database scheduler ({connection.vendor})"
