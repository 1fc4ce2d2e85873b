"""What every row of the fault matrix shares: how long its outages and loads last, how it
counts real executions against the history, and the line it reports.

``FAULTS_SCALE=full`` (set by ``python -m bench.faults``) runs the rows at the length the
matrix was specified at (30 s outages, 20 s jobs, 2,000 schedules a minute for 3 minutes);
unset, the suite runs them shorter: the behaviour under test is the same. With
``FAULTS_REPORT=/path`` each row appends what it expected and what it observed to that file
(JSON lines), before it asserts, so the benchmark can print a failing row too.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Count

from scheduler.models import JobRun

Status = JobRun.Status


@dataclass(frozen=True)
class Scale:
    #: Seconds a server stays down.
    outage: float
    #: Seconds a job that is cut in the middle runs.
    job: float
    #: Schedules firing every minute, and for how many minutes, in the load row.
    load_schedules: int
    load_minutes: int


SCALES = {
    "ci": Scale(outage=3, job=4, load_schedules=300, load_minutes=2),
    "full": Scale(outage=30, job=20, load_schedules=2000, load_minutes=3),
}


def scale() -> Scale:
    name = os.environ.get("FAULTS_SCALE", "ci")
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"FAULTS_SCALE={name!r}: use one of {', '.join(SCALES)}") from None


def executions(marker: Path) -> Counter[str]:
    """How often each line's key (its first word) was written by a job that really ran."""
    if not marker.exists():
        return Counter()
    return Counter(line.split()[0] for line in marker.read_text().splitlines() if line)


def occurrences() -> dict[str, int]:
    """Occurrences (first attempts) by the status of their last attempt."""
    last: dict[int, str] = {}
    rows = JobRun.objects.order_by("attempt").values_list("pk", "occurrence_id", "status")
    for pk, occurrence, status in rows:
        last[occurrence or pk] = status
    return dict(Counter(last.values()))


def unsettled() -> dict[str, int]:
    """Attempts still pending, queued, buffered or running: none once a row is over."""
    rows = JobRun.objects.filter(status__in=JobRun.ACTIVE).values("status").annotate(n=Count("pk"))
    return {row["status"]: row["n"] for row in rows}


def report(row: str, expected: str, observed: str) -> None:
    path = os.environ.get("FAULTS_REPORT")
    if not path:
        return
    line = {"row": row, "scale": os.environ.get("FAULTS_SCALE", "ci")}
    line.update(expected=expected, observed=observed)
    with open(path, "a") as handle:
        handle.write(json.dumps(line) + "\n")
