"""A schedule's recent runs and how they went: success rate, typical and p95 duration.

Two bounded queries, both walking the (schedule, -scheduled_for, -id) index from the newest
run: the last ``recent`` runs, and the last ``sample`` runs that reached an outcome. Neither
grows with the size of the history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule

Status = JobRun.Status

#: Runs listed on a schedule's page.
RECENT_RUNS = 20
#: Runs drawn in a schedule's sparkline.
SPARK_RUNS = 100
#: Runs with an outcome that the rate and the durations are computed over.
SAMPLE_RUNS = 200
#: Outcomes counted by the success rate: the job ran and ended one way or the other. Skipped,
#: missed and cancelled runs never ran; a "retrying" attempt is followed by another.
OUTCOMES = (Status.SUCCEEDED, *JobRun.FAILURES)
#: Fields the summary reads; the heavy text fields (logs, traceback) are never loaded.
LISTED_FIELDS = (
    "id",
    "scheduled_for",
    "status",
    "trigger",
    "attempt",
    "max_attempts",
    "duration",
    "note",
)


@dataclass
class RunSummary:
    recent: list[JobRun] = field(default_factory=list)
    #: The last ``SPARK_RUNS`` runs, oldest first.
    spark: list[JobRun] = field(default_factory=list)
    #: Runs with an outcome in the sample, and how many of them succeeded.
    sampled: int = 0
    succeeded: int = 0
    #: Durations (seconds) of the successful runs in the sample.
    median_duration: float | None = None
    p95_duration: float | None = None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.sampled if self.sampled else None


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values
    at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def schedule_summary(
    schedule: Schedule, *, recent: int = RECENT_RUNS, sample: int = SAMPLE_RUNS
) -> RunSummary:
    runs = JobRun.objects.filter(schedule=schedule).order_by("-scheduled_for", "-id")
    last = list(runs.only(*LISTED_FIELDS)[: max(recent, SPARK_RUNS)])
    summary = RunSummary(recent=last[:recent], spark=last[:SPARK_RUNS][::-1])
    outcomes = list(runs.filter(status__in=OUTCOMES).values_list("status", "duration")[:sample])
    summary.sampled = len(outcomes)
    durations = [d for status, d in outcomes if status == Status.SUCCEEDED and d is not None]
    summary.succeeded = sum(1 for status, _ in outcomes if status == Status.SUCCEEDED)
    summary.median_duration = median(durations)
    summary.p95_duration = percentile(durations, 0.95)
    return summary
