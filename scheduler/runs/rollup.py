"""The run history rolled up by hour, for the overview's charts.

``refresh`` adds the runs that ended since it last ran to ``RunHour`` (one row per hour, job
and outcome: counts, a duration histogram, dispatch lag) and moves ``RollupMark`` on. Beat
offers to refresh at each turn of its loop, in a thread (``scheduler.background``). The
overview reads the rolled-up hours, plus the runs that ended after the mark (``read``: a
minute or two of them, grouped by the database), so its figures are current without grouping
the whole history.

Two refreshers never count a run twice: each moves the mark from the value it read with a
conditional UPDATE in the transaction that adds the counts, and the one that finds the mark
moved gives up. Runs are read ``MARGIN`` behind the clock, so a run committed a moment after
it ended is not skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.db.models.functions import TruncHour

from scheduler.background import Periodic
from scheduler.runs.models import JobRun, RollupMark, RunHour

#: Upper bounds (seconds) of the duration buckets; one more bucket holds longer runs.
DURATION_BOUNDS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
MARK = "runs"
#: Runs are rolled up this far behind the clock: a run is committed a moment after it ends
#: (the worker stamps and commits it in one statement), and hosts' clocks differ a little.
MARGIN = timedelta(seconds=10)
#: The first refresh reads back this far (the overview's longest window is a week).
FIRST_LOOK_BACK = timedelta(days=8)
#: Each transaction of a refresh adds at most this much history.
STEP = timedelta(days=1)
#: Rolled-up hours older than this are deleted.
KEEP = timedelta(days=35)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Tally:
    """What is counted for one (hour, job, outcome)."""

    runs: int = 0
    duration_sum: float = 0.0
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS) + 1))
    lag_sum: float = 0.0
    lag_max: float | None = None
    lag_count: int = 0

    def merge(self, other: Tally) -> None:
        self.runs += other.runs
        self.duration_sum += other.duration_sum
        for index, count in enumerate(other.durations[: len(self.durations)]):
            self.durations[index] += count
        self.lag_sum += other.lag_sum
        self.lag_count += other.lag_count
        if other.lag_max is not None:
            self.lag_max = (
                other.lag_max if self.lag_max is None else max(self.lag_max, other.lag_max)
            )

    @classmethod
    def of_row(cls, row: RunHour) -> Tally:
        durations = list(row.durations) + [0] * (len(DURATION_BOUNDS) + 1 - len(row.durations))
        return cls(row.runs, row.duration_sum, durations, row.lag_sum, row.lag_max, row.lag_count)


Key = tuple[datetime, str, str]


def tally(since: datetime, until: datetime | None = None) -> dict[Key, Tally]:
    """The runs that ended in [since, until), counted by (hour, task, status): grouped by the
    database over the ``run_finished`` index, so a busy minute costs one small result."""
    runs = JobRun.objects.filter(finished_at__gte=since)
    if until is not None:
        runs = runs.filter(finished_at__lt=until)
    # Dispatch lag (published minus scheduled) is beat's alone: a manual or backfilled run
    # has no due time to be late for.
    beat = Q(trigger=JobRun.Trigger.BEAT, published_at__isnull=False)
    lag = ExpressionWrapper(F("published_at") - F("scheduled_for"), output_field=DurationField())
    at_most = {
        f"le{i}": Count("id", filter=Q(duration__lte=bound))
        for i, bound in enumerate(DURATION_BOUNDS)
    }
    rows = (
        runs.annotate(hour=TruncHour("finished_at", tzinfo=UTC))
        .values("hour", "task_name", "status")
        .annotate(
            runs=Count("id"),
            timed=Count("duration"),
            duration_sum=Sum("duration"),
            lag_sum=Sum(lag, filter=beat),
            lag_max=Max(lag, filter=beat),
            lag_count=Count("id", filter=beat),
            **at_most,
        )
        .order_by()
    )
    out: dict[Key, Tally] = {}
    for row in rows:
        cumulative = [row[f"le{i}"] for i in range(len(DURATION_BOUNDS))] + [row["timed"]]
        durations = [n - (cumulative[i - 1] if i else 0) for i, n in enumerate(cumulative)]
        out[(hour_of(row["hour"]), row["task_name"], row["status"])] = Tally(
            runs=row["runs"],
            duration_sum=row["duration_sum"] or 0.0,
            durations=durations,
            lag_sum=_seconds(row["lag_sum"]) or 0.0,
            lag_max=_seconds(row["lag_max"]),
            lag_count=row["lag_count"],
        )
    return out


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else max(value.total_seconds(), 0.0)


def _move_mark(start: datetime | None, end: datetime) -> bool:
    """Claim the range up to ``end``: True when the mark still stood at ``start``."""
    if start is not None:
        return bool(
            RollupMark.objects.filter(name=MARK, rolled_until=start).update(rolled_until=end)
        )
    try:
        with transaction.atomic():
            RollupMark.objects.create(name=MARK, rolled_until=end)
    except IntegrityError:
        return False
    return True


def _store(counts: dict[Key, Tally]) -> None:
    if not counts:
        return
    hours = {hour for hour, _, _ in counts}
    existing = RunHour.objects.filter(
        hour__in=hours,
        task_name__in={task for _, task, _ in counts},
        status__in={status for _, _, status in counts},
    )
    merged = dict(counts)
    for row in existing:
        key = (hour_of(row.hour), row.task_name, row.status)
        if key in merged:
            total = Tally.of_row(row)
            total.merge(merged[key])
            merged[key] = total
    RunHour.objects.bulk_create(
        [
            RunHour(
                hour=hour,
                task_name=task,
                status=status,
                runs=t.runs,
                duration_sum=t.duration_sum,
                durations=t.durations,
                lag_sum=t.lag_sum,
                lag_max=t.lag_max,
                lag_count=t.lag_count,
            )
            for (hour, task, status), t in merged.items()
        ],
        update_conflicts=True,
        unique_fields=["hour", "task_name", "status"],
        update_fields=["runs", "duration_sum", "durations", "lag_sum", "lag_max", "lag_count"],
    )


def rolled_until() -> datetime | None:
    return RollupMark.objects.filter(name=MARK).values_list("rolled_until", flat=True).first()


def refresh(now: datetime) -> int:
    """Roll up the runs that ended up to ``now - MARGIN``; returns how many were added (0 when
    another process rolled them up first)."""
    cutoff = now - MARGIN
    start = rolled_until()
    position = start if start is not None else hour_of(now - FIRST_LOOK_BACK)
    added = 0
    while position < cutoff:
        end = min(cutoff, position + STEP)
        with transaction.atomic():
            if not _move_mark(start, end):
                return added
            counts = tally(position, end)
            _store(counts)
        added += sum(t.runs for t in counts.values())
        start = position = end
    RunHour.objects.filter(hour__lt=hour_of(now - KEEP)).delete()
    return added


#: Beat offers a refresh at each turn of its loop; it runs in a thread of its own.
in_background = Periodic("overview-rollup", lambda: settings.OVERVIEW_ROLLUP_INTERVAL, refresh)


# --- reading ------------------------------------------------------------------------------


@dataclass
class Rollup:
    """Counts since a moment, rolled-up hours and the runs after the mark together."""

    #: (hour, task, status) -> Tally, for every hour in the window.
    cells: dict[Key, Tally]
    rolled_until: datetime | None

    def by_hour(self) -> dict[datetime, Counter[str]]:
        out: dict[datetime, Counter[str]] = {}
        for (hour, _, status), t in self.cells.items():
            out.setdefault(hour, Counter())[status] += t.runs
        return out

    def by_task(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for (_, task, status), t in self.cells.items():
            out.setdefault(task, Counter())[status] += t.runs
        return out

    def durations_by_task(self, status: str = JobRun.Status.SUCCEEDED) -> dict[str, Tally]:
        out: dict[str, Tally] = {}
        for (_, task, cell_status), t in self.cells.items():
            if cell_status == status:
                out.setdefault(task, Tally()).merge(t)
        return out

    def lag_by_hour(self) -> dict[datetime, Tally]:
        out: dict[datetime, Tally] = {}
        for (hour, _, _), t in self.cells.items():
            if t.lag_count:
                out.setdefault(hour, Tally()).merge(t)
        return out


def read(since: datetime) -> Rollup:
    """The hours from ``since`` on: one query over ``RunHour`` and one over the runs that
    ended after the mark (a minute or two of them while beat refreshes)."""
    mark = rolled_until()
    cells: dict[Key, Tally] = {}
    for row in RunHour.objects.filter(hour__gte=hour_of(since)):
        cells[(hour_of(row.hour), row.task_name, row.status)] = Tally.of_row(row)
    tail_from = max(mark, since) if mark is not None else since
    for key, t in tally(tail_from).items():
        cells.setdefault(key, Tally()).merge(t)
    return Rollup(cells, mark)


def percentile(t: Tally, fraction: float) -> float | None:
    """The ``fraction`` percentile of a tally's durations, estimated from the buckets
    (linear within the bucket); None without durations."""
    total = sum(t.durations)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(t.durations):
        if count and seen + count >= rank:
            low = DURATION_BOUNDS[index - 1] if index else 0.0
            if index >= len(DURATION_BOUNDS):
                return low
            high = DURATION_BOUNDS[index]
            return low + (high - low) * max(rank - seen, 0) / count
        seen += count
    return DURATION_BOUNDS[-1]


def hours(since: datetime, now: datetime) -> Iterable[datetime]:
    """Every hour from ``since``'s to ``now``'s."""
    hour, last = hour_of(since), hour_of(now)
    while hour <= last:
        yield hour
        hour += timedelta(hours=1)
