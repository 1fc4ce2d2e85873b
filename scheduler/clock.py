"""The time beat schedules by. Injected, so tests drive time instead of sleeping.

``SCHEDULER_CLOCK`` selects it: ``system`` (the default), or ``file:/path`` for tests: the
file holds an ISO 8601 instant, and time runs on from that instant, in real seconds, from
the moment the file was written. A test moves time by writing the file again.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FileClock:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._mtime_ns: int | None = None
        self._base: datetime | None = None

    def now(self) -> datetime:
        stat = self.path.stat()
        if stat.st_mtime_ns != self._mtime_ns:
            self._base = datetime.fromisoformat(self.path.read_text().strip())
            self._mtime_ns = stat.st_mtime_ns
        elapsed = time.time() - stat.st_mtime_ns / 1e9
        return self._base + timedelta(seconds=max(elapsed, 0.0))

    @staticmethod
    def set(path: str | os.PathLike[str], instant: datetime) -> None:
        """Move the clock at ``path`` to ``instant`` (atomically)."""
        target = Path(path)
        scratch = target.with_suffix(".tmp")
        scratch.write_text(instant.isoformat())
        os.replace(scratch, target)


def get_clock() -> Clock:
    spec = getattr(settings, "SCHEDULER_CLOCK", "system") or "system"
    if spec == "system":
        return SystemClock()
    if spec.startswith("file:"):
        return FileClock(spec.removeprefix("file:"))
    raise ImproperlyConfigured(f"SCHEDULER_CLOCK={spec!r}: use 'system' or 'file:/path'")
