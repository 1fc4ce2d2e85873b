"""Beat heartbeats: each beat process stamps its ``BeatHeartbeat`` row as its loop turns, at
most every ``SCHEDULER_BEAT_HEARTBEAT`` seconds, so the overview can show which beats run and
which stopped. Rows of beats gone for a day are deleted."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from scheduler.beat.models import BeatHeartbeat
from scheduler.clock import Clock, get_clock

logger = logging.getLogger(__name__)

#: Rows of beats not heard from for this long are deleted.
FORGET_AFTER = timedelta(days=1)

_started_at: datetime | None = None
_next_stamp = 0.0


def stamp(now: datetime, started_at: datetime | None = None) -> None:
    """Stamp this process's row (one upsert)."""
    hostname = socket.gethostname()[:255]
    BeatHeartbeat.objects.update_or_create(
        name=f"{hostname}:{os.getpid()}",
        defaults={"last_seen_at": now},
        create_defaults={
            "hostname": hostname,
            "pid": os.getpid(),
            "started_at": started_at or now,
            "last_seen_at": now,
        },
    )
    BeatHeartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()


def offer(sender: Any = None, clock: Clock | None = None, **kwargs: Any) -> None:
    """Beat's ``loop_turned``. Never raises: an outage costs a log line."""
    global _started_at, _next_stamp
    if time.monotonic() < _next_stamp:
        return
    _next_stamp = time.monotonic() + settings.SCHEDULER_BEAT_HEARTBEAT
    now = (clock or get_clock()).now()
    _started_at = _started_at or now
    try:
        stamp(now, _started_at)
    except DatabaseError as exc:
        logger.warning("beat heartbeat: not stamped (%s)", type(exc).__name__)


def is_alive(heartbeat: BeatHeartbeat, now: datetime) -> bool:
    return now - heartbeat.last_seen_at <= timedelta(seconds=settings.SCHEDULER_BEAT_LOST_AFTER)
