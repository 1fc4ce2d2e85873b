"""When a django-celery-beat ``PeriodicTask`` fires, for every schedule type it supports.

Our own cron engine (scheduler.policies.cron, ISC DST rules) replaces celery's for crontab entries;
interval, clocked, one_off, start_time and expires behave as the stock scheduler does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django_celery_beat.models import PeriodicTask

from scheduler.policies import cron


class UnsupportedSchedule(ValueError):  # noqa: N818 - reads as the condition it names
    """A PeriodicTask whose schedule this scheduler refuses (solar), or that has none."""


@dataclass(frozen=True)
class Timing:
    kind: str  # crontab | interval | clocked
    cron: str = ""
    tz: str = "UTC"
    every: timedelta | None = None
    clocked_at: datetime | None = None
    start_time: datetime | None = None
    expires: datetime | None = None
    one_off: bool = False

    @property
    def signature(self) -> str:
        """Digest of everything that shapes the timing: a change means recompute."""
        return hashlib.sha1(repr(self).encode(), usedforsecurity=False).hexdigest()

    def first_fire(self, now: datetime) -> datetime | None:
        """The first fire time of a task beat has not seen before."""
        if self.kind == "clocked":
            return self._bounded(self.clocked_at)  # a past clocked time is due at once
        if self.kind == "interval" and self.start_time is not None:
            if self.start_time > now:
                return self._bounded(self.start_time)
            return self.next_fire(now, anchor=self.start_time)
        return self.next_fire(now, anchor=now)

    def next_fire(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """The first fire time strictly after ``after`` (None: never again)."""
        if self.start_time is not None and after < self.start_time:
            after = self.start_time - timedelta(microseconds=1)
        if self.kind == "crontab":
            return self._bounded(cron.next_fire(self.cron, self.tz, after))
        if self.kind == "interval":
            assert self.every is not None
            base = anchor or after
            if base > after:
                return self._bounded(base)
            steps = (after - base) // self.every + 1
            return self._bounded(base + steps * self.every)
        if self.kind == "clocked":
            at = self.clocked_at
            return self._bounded(at if at is not None and at > after else None)
        raise UnsupportedSchedule(f"unknown schedule kind {self.kind!r}")

    def _bounded(self, when: datetime | None) -> datetime | None:
        if when is None or (self.expires is not None and when > self.expires):
            return None
        return when


def timing_of(task: PeriodicTask) -> Timing:
    """The timing of ``task`` (with its schedule row loaded). Raises UnsupportedSchedule."""
    common = {"start_time": task.start_time, "expires": task.expires, "one_off": task.one_off}
    if task.crontab_id:
        c = task.crontab
        expr = f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
        return Timing(kind="crontab", cron=expr, tz=str(c.timezone), **common)
    if task.interval_id:
        interval = task.interval
        every = timedelta(**{interval.period: interval.every})
        if every <= timedelta(0):
            raise UnsupportedSchedule(f"interval of {interval} never fires")
        return Timing(kind="interval", every=every, **common)
    if task.clocked_id:
        return Timing(kind="clocked", clocked_at=task.clocked.clocked_time, **common)
    if task.solar_id:
        raise UnsupportedSchedule(
            "solar schedules are not supported by this scheduler; use a crontab in the "
            "place's time zone instead"
        )
    raise UnsupportedSchedule("the task has no schedule (crontab, interval or clocked)")
