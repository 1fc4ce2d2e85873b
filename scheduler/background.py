"""Work that rides on beat's loop without holding it up: ``Periodic`` runs a function in a
thread of its own, at most every ``interval`` seconds and one at a time, so a slow pass (the
first rollup of a week of history, a forecast over 100,000 schedules) never delays a due run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connections

from scheduler.clock import Clock, get_clock

logger = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, interval: Callable[[], float], work: Callable[[datetime], Any]):
        self.name = name
        self.interval = interval
        self.work = work
        self._next = 0.0
        self._thread: threading.Thread | None = None

    def offer(self, sender: Any = None, clock: Clock | None = None, **kwargs: Any) -> bool:
        """A ``loop_turned`` receiver: start a pass if one is due and none is running (True
        when one started). Never raises."""
        interval = self.interval()
        if interval <= 0 or time.monotonic() < self._next:
            return False
        if self._thread is not None and self._thread.is_alive():
            return False
        self._next = time.monotonic() + interval
        now = (clock or get_clock()).now()
        self._thread = threading.Thread(target=self._run, args=(now,), name=self.name, daemon=True)
        self._thread.start()
        return True

    def _run(self, now: datetime) -> None:
        try:
            self.work(now)
        except Exception:
            logger.exception("%s: the pass failed; trying again next time", self.name)
        finally:
            connections.close_all()  # this thread's own

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
