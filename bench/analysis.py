"""Reading the publish logs written by ``bench.beat_runner`` and turning them into numbers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

#: A publish within this many seconds before its scheduled minute counts for that minute
#: (celery's heap wakes up to 10 ms early).
EARLY_TOLERANCE = 0.5

Key = tuple[str, int]  # (periodic task name, scheduled time as a UTC timestamp)
Infer = Callable[[str, float], "int | None"]


class LogTail:
    """Reads the complete lines appended to a publish log since the last read."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._rest = ""

    def read(self) -> list[tuple[str, str, float]]:
        """New ``(name, scheduled_for, published)`` records."""
        try:
            with self.path.open(encoding="utf-8") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
                self._offset = handle.tell()
        except FileNotFoundError:
            return []
        text = self._rest + chunk
        lines = text.split("\n")
        self._rest = lines.pop()
        records = []
        for line in lines:
            _task_id, scheduled, name, published = line.split("\t")
            records.append((name, scheduled, float(published)))
        return records


class Tally:
    """What was published against what was due.

    ``expected`` maps every occurrence due in the measured window, ``(name, scheduled)``, to
    nothing in particular (a set). A record's scheduled time is its ``scheduled_for`` header
    when the scheduler sends one (ours), else ``infer(name, published)`` from the seeded cron
    (django-celery-beat sends no such header).
    """

    def __init__(self, expected: set[Key], infer: Infer):
        self.expected = expected
        self.infer = infer
        self.first: dict[Key, float] = {}
        self.publishes = 0  # of due occurrences, duplicates included
        self.other = 0  # published, but not due in the window
        self._parsed: dict[str, int] = {}

    def add(self, records: Iterable[tuple[str, str, float]]) -> None:
        for name, scheduled, published in records:
            if scheduled:
                at = self._parsed.get(scheduled)
                if at is None:
                    at = self._parsed[scheduled] = round(
                        datetime.fromisoformat(scheduled).timestamp()
                    )
            else:
                at = self.infer(name, published)
            key = (name, at)
            if at is None or key not in self.expected:
                self.other += 1
                continue
            self.publishes += 1
            if key not in self.first or published < self.first[key]:
                self.first[key] = published

    @property
    def sent(self) -> int:
        return len(self.first)

    @property
    def complete(self) -> bool:
        return self.sent >= len(self.expected)

    def summary(self) -> dict:
        lags = sorted((published - key[1]) * 1000 for key, published in self.first.items())
        # The rate while sending: the occurrences of each scheduled minute over the time from
        # the first to the last of them, summed over minutes (a burst is one such minute).
        groups: dict[int, list[float]] = {}
        for (_, at), published in self.first.items():
            groups.setdefault(at, []).append(published)
        counted = [(len(g), max(g) - min(g)) for g in groups.values() if len(g) > 1]
        span = sum(s for _, s in counted)
        times = list(self.first.values())
        return {
            "due": len(self.expected),
            "sent": self.sent,
            "duplicates": self.publishes - self.sent,
            "missed": len(self.expected) - self.sent,
            "publishes": self.publishes,
            "other_publishes": self.other,
            "throughput_per_s": round(sum(n for n, _ in counted) / span, 1) if span else None,
            "first_publish": min(times) if times else None,
            "last_publish": max(times) if times else None,
            "lag_p50_ms": _round(percentile(lags, 50)),
            "lag_p99_ms": _round(percentile(lags, 99)),
            "lag_max_ms": _round(lags[-1] if lags else None),
        }


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def minute_floor(t: float) -> int:
    return int(t // 60 * 60)


def latest_minute(t: float, minute: int) -> int:
    """The latest instant at ``minute`` past an hour, on the minute, not after ``t`` (with
    ``EARLY_TOLERANCE``)."""
    floor = minute_floor(t + EARLY_TOLERANCE)
    current = floor // 60 % 60
    return floor - ((current - minute) % 60) * 60
