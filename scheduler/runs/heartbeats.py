"""Worker heartbeats: each worker's main process stamps its ``WorkerHeartbeat`` row every
``SCHEDULER_WORKER_HEARTBEAT`` seconds from a thread, and deletes it on a clean shutdown.
Beat's reaper reads them (``Liveness``): a running attempt of a worker not heard from for
``SCHEDULER_WORKER_LOST_AFTER`` seconds, or of an earlier incarnation of a worker restarted
under the same name, is lost; one of a live worker is left alone.

The thread opens a connection for each heartbeat and closes it: the pool processes the main
process forks never inherit an open one, and an outage costs nothing but a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from django.conf import settings
from django.db import DatabaseError, connection

from scheduler.clock import Clock
from scheduler.runs.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


class Heartbeat:
    """The heartbeat of this worker (its main process)."""

    def __init__(self, hostname: str, clock: Clock, started_at: datetime | None = None):
        self.hostname = hostname[:255]
        self.clock = clock
        self.pid = os.getpid()
        self.started_at = started_at or clock.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = settings.SCHEDULER_WORKER_HEARTBEAT
        while True:
            self.beat()
            if self._stop.wait(interval):
                return

    def beat(self) -> bool:
        """Stamp the row now (one statement); False when the database cannot be reached."""
        row = WorkerHeartbeat(
            hostname=self.hostname,
            pid=self.pid,
            started_at=self.started_at,
            last_seen_at=self.clock.now(),
        )
        try:
            WorkerHeartbeat.objects.bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["hostname"],
                update_fields=["pid", "started_at", "last_seen_at"],
            )
        except DatabaseError as exc:
            if not self._failing:  # once per outage
                logger.warning("worker heartbeat: cannot write it: %s", exc)
            self._failing = True
            return False
        finally:
            _close()
        if self._failing:
            logger.info("worker heartbeat: written again")
        self._failing = False
        return True

    def stop(self) -> None:
        """A clean shutdown: the worker's runs have ended; its row goes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for last in (False, True):  # once more on a fresh connection: an outage broke it
            try:
                WorkerHeartbeat.objects.filter(hostname=self.hostname, pid=self.pid).delete()
                break
            except DatabaseError as exc:  # it ages out: the reaper finds no run of it going
                if last:
                    logger.warning("worker heartbeat: cannot remove it: %s", exc)
            finally:
                _close()


def _close() -> None:
    with contextlib.suppress(DatabaseError):
        connection.close()


class Verdict(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    #: No heartbeat row (a worker from before heartbeats, or one long gone).
    UNKNOWN = "unknown"


@dataclass
class Liveness:
    """What the heartbeats say about the workers of running attempts, at ``now``."""

    beats: dict[str, WorkerHeartbeat]
    now: datetime
    lost_after: timedelta
    #: False right after the reaper could not look for a while (beat starting, a database
    #: outage, during which no worker could write its heartbeat either): a stale heartbeat
    #: proves nothing then, and counts as none.
    judge: bool = True

    @classmethod
    def read(cls, now: datetime, judge: bool = True) -> Liveness:
        lost_after = timedelta(seconds=settings.SCHEDULER_WORKER_LOST_AFTER)
        beats = {b.hostname: b for b in WorkerHeartbeat.objects.all()}
        return cls(beats, now, lost_after, judge)

    def verdict(self, host: str, started_at: datetime | None) -> Verdict:
        beat = self.beats.get(host)
        if beat is None:
            return Verdict.UNKNOWN
        if started_at is not None and started_at < beat.started_at:
            return Verdict.DEAD  # an earlier incarnation of a worker of that name
        if beat.last_seen_at >= self.now - self.lost_after:
            return Verdict.ALIVE
        return Verdict.DEAD if self.judge else Verdict.UNKNOWN

    def suspect_hosts(self, since: datetime) -> list[str]:
        """Hosts whose running attempts may be lost however recent: silent ones, and those
        restarted after ``since``."""
        return [
            host
            for host, beat in self.beats.items()
            if beat.started_at > since
            or (self.judge and beat.last_seen_at < self.now - self.lost_after)
        ]
