"""What every row of the fault matrix shares: how long its outages and loads last, how it
counts real executions against the history, and the line it reports.

``FAULTS_SCALE=full`` (set by ``python -m bench.faults``) runs the rows at the length the
matrix was specified at (30 s outages, 20 s jobs, 2,000 schedules a minute for 3 minutes);
unset, the suite runs them shorter: the behaviour under test is the same. With
``FAULTS_REPORT=/path`` each row appends what it expected and what it observed to that file
(JSON lines), failing or not. A row may compare one line (``outcome``) with the line it
expects and ``report`` both; any other row is listed by its test's name.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from django.db.models import Count

from scheduler.runs.models import JobRun
from tests.faults.scale import scale
from tests.support.processes import Process
from tests.support.runs import attempts, lines

__all__ = [
    "assert_nothing_left_waiting",
    "assert_worker_survived",
    "executions",
    "job_lines",
    "occurrences",
    "outcome",
    "report",
    "scale",
    "summary",
    "unsettled",
    "write_row",
]

Status = JobRun.Status


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


def outcome(statuses: dict[str, int], ran: Counter[str], keys: list[str]) -> str:
    """One line a row compares: occurrences by final status, how many times each key's job
    really ran (written by the job itself), what is still active."""
    counts = sorted({ran[key] for key in keys} | ({-1} if set(ran) - set(keys) else set()))
    parts = [", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "none"]
    parts.append("each ran " + "/".join(f"{n}x" for n in counts))
    active = unsettled()
    parts.append("active: " + (", ".join(f"{n} {s}" for s, n in sorted(active.items())) or "none"))
    return "; ".join(parts)


#: What the running row reported last (taken by the row's report hook in conftest).
_reported: dict[str, str] = {}


def assert_nothing_left_waiting() -> None:
    left = unsettled()
    assert not left, f"runs left waiting: {left}"


def assert_worker_survived(worker: Process) -> None:
    assert worker.popen.poll() is None, worker.output()[-3000:]
    assert "Unrecoverable error" not in worker.output()


def summary(first: JobRun) -> list[tuple[int, str]]:
    """(attempt, status) of each attempt of ``first``'s occurrence."""
    return [(r.attempt, r.status) for r in attempts(first)]


def job_lines(path: Path) -> list[str]:
    """The lines a test job noted, without the process ids."""
    return [line.split(" pid=")[0] for line in lines(path)]


def report(row: str, expected: str, observed: str) -> bool:
    """Name the row and what it expected and observed, for ``bench.faults``; whether it
    held. A row that reports nothing is listed under its test's name."""
    _reported.update(row=row, expected=expected, observed=observed)
    return expected == observed


def write_row(name: str, passed: bool, failure: str) -> None:
    """Append the row that just ran to ``FAULTS_REPORT`` (JSON lines), if it is set."""
    line = {"row": name, "expected": "every assertion holds", "observed": "held"}
    line.update(_reported)
    _reported.clear()
    if not passed:
        line["observed"] = failure
    path = os.environ.get("FAULTS_REPORT")
    if path:
        line.update(scale=os.environ.get("FAULTS_SCALE", "ci"), held="yes" if passed else "NO")
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
