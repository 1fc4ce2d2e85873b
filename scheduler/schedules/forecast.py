"""The load ahead: when the enabled schedules are due over the next day, counted per bin, and
the instants where many are due in the same second (a pile-up, such as 2,000 schedules at
03:00:00), with the schedules involved and the jitter that would spread them.

Schedules are grouped by (cron, zone, jitter) in the database and each group's fire times
are computed once, so the cost follows the number of distinct crons, not of schedules. A
jittered schedule is due at its fire time plus an offset within its jitter, so its group is
spread evenly over that span. The result is one ``LoadForecast`` row, recomputed by beat
every ``OVERVIEW_FORECAST_INTERVAL`` seconds (in a thread: it must not hold up due runs)
and after jitter is set from the overview.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet

from scheduler.background import Periodic
from scheduler.policies import cron
from scheduler.schedules.models import LoadForecast, Schedule
from scheduler.schedules.periodic import save_schedule

NAME = "next-day"
#: Bins of the histogram.
BIN = timedelta(minutes=15)
#: Shown ahead of now; computed a little further, so a forecast a few minutes old still
#: covers the whole day shown.
HORIZON = timedelta(hours=24)
AHEAD = HORIZON + timedelta(hours=1)
#: Pile-ups kept, the largest first.
MAX_PEAKS = 10
#: Groups named per pile-up.
MAX_GROUPS = 5
#: Suggested jitter: enough to spread a pile-up to about this many schedules a second...
SPREAD_PER_SECOND = 10
#: ...within these bounds (seconds).
MIN_SUGGESTED, MAX_SUGGESTED = 60, 900


def due_schedules() -> QuerySet[Schedule]:
    """The schedules beat will fire: enabled, not paused."""
    return Schedule.objects.filter(enabled=True, paused_at__isnull=True)


def suggested_jitter(count: int) -> int:
    """Seconds of jitter that spread ``count`` schedules due together to about
    ``SPREAD_PER_SECOND`` a second, in whole minutes."""
    seconds = math.ceil(count / SPREAD_PER_SECOND / 60) * 60
    return max(MIN_SUGGESTED, min(MAX_SUGGESTED, seconds))


@dataclass
class Peak:
    at: datetime
    count: int
    #: The (cron, timezone, schedules) groups due then, the largest first.
    groups: list[tuple[str, str, int]]

    @property
    def suggested_jitter(self) -> int:
        return suggested_jitter(self.count)


def compute(now: datetime) -> LoadForecast:
    """Compute the forecast from ``now`` (not saved)."""
    end = now + AHEAD
    # Bins start on a quarter hour, so their labels read as times of day.
    start = now - (now - now.replace(minute=0, second=0, microsecond=0)) % BIN
    bins = [0] * math.ceil((end - start) / BIN)
    instants: dict[datetime, list[tuple[str, str, int]]] = defaultdict(list)
    groups = (
        due_schedules()
        .filter(Q(end_at__isnull=True) | Q(end_at__gt=now))
        .values_list("cron", "timezone", "jitter")
        .annotate(n=Count("id"))
        .order_by()
    )
    total = 0
    for expr, zone, jitter, n in groups:
        total += n
        try:
            fires = cron.fire_times(expr, zone, now, end)
        except (ValueError, KeyError):  # a row written past the form's checks
            continue
        for fire in fires:
            if jitter:
                _spread(bins, start, fire, timedelta(seconds=jitter), n)
            else:
                _add(bins, start, fire, n)
                instants[fire].append((expr, zone, n))
    threshold = settings.OVERVIEW_PILEUP_AT
    peaks = sorted(
        (
            (at, sum(n for _, _, n in groups), groups)
            for at, groups in instants.items()
            if sum(n for _, _, n in groups) >= threshold
        ),
        key=lambda peak: (-peak[1], peak[0]),
    )[:MAX_PEAKS]
    return LoadForecast(
        name=NAME,
        computed_at=now,
        start=start,
        bin_seconds=int(BIN.total_seconds()),
        bins=bins,
        peaks=[
            {
                "at": at.isoformat(),
                "count": count,
                "groups": [list(g) for g in sorted(groups, key=lambda g: -g[2])[:MAX_GROUPS]],
            }
            for at, count, groups in sorted(peaks, key=lambda peak: peak[0])
        ],
        schedules=total,
    )


def _add(bins: list[int], start: datetime, moment: datetime, n: float) -> None:
    index = int((moment - start) / BIN)
    if 0 <= index < len(bins):
        bins[index] += n


def _spread(bins: list[int], start: datetime, fire: datetime, span: timedelta, n: int) -> None:
    """Add ``n`` due evenly over [fire, fire + span) to the bins it covers."""
    moment, end = fire, fire + span
    while moment < end:
        bin_end = start + BIN * (int((moment - start) / BIN) + 1)
        piece = min(bin_end, end) - moment
        _add(bins, start, moment, round(n * (piece / span)))
        moment += piece


def refresh(now: datetime) -> LoadForecast:
    forecast = compute(now)
    forecast.save()
    return forecast


def latest() -> LoadForecast | None:
    return LoadForecast.objects.filter(name=NAME).first()


def peaks_of(forecast: LoadForecast) -> list[Peak]:
    return [
        Peak(datetime.fromisoformat(p["at"]), p["count"], [tuple(g) for g in p["groups"]])
        for p in forecast.peaks
    ]


def pileup_schedules(at: datetime, now: datetime) -> QuerySet[Schedule]:
    """The schedules without jitter due at ``at`` (a pile-up's): recomputed from the crons, so
    schedules changed since the forecast are judged as they are now."""
    candidates = due_schedules().filter(jitter=0)
    pairs = candidates.values_list("cron", "timezone").distinct().order_by()
    due_then = Q(pk__in=[])
    window_start = at - timedelta(seconds=1)
    for expr, zone in pairs:
        try:
            fires = cron.fire_times(expr, zone, window_start, at, limit=1)
        except (ValueError, KeyError):
            continue
        if fires and fires[0] == at:
            due_then |= Q(cron=expr, timezone=zone)
    return candidates.filter(due_then) if at > now else candidates.none()


def set_jitter(schedules: QuerySet[Schedule], seconds: int) -> int:
    """Give each schedule ``seconds`` of jitter (saved as an edit is, so beat moves its due
    times); returns how many were changed."""
    changed = 0
    with transaction.atomic():
        locked = schedules.select_for_update(of=("self",))
        for schedule in locked.select_related("job", "periodic_task"):
            schedule.jitter = seconds
            save_schedule(schedule, validate=False)
            changed += 1
    return changed


#: Beat offers to recompute at each turn of its loop; it runs in a thread of its own.
in_background = Periodic("overview-forecast", lambda: settings.OVERVIEW_FORECAST_INTERVAL, refresh)
