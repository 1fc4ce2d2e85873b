"""What every row of the fault matrix checks at its end: the worker is still up, each run
ran exactly once (its job's own lines) with the attempts the history shows, nothing waits."""

from __future__ import annotations

from pathlib import Path

from scheduler.models import JobRun
from tests.support.processes import Process
from tests.support.runs import attempts, lines

Status = JobRun.Status


def assert_worker_survived(worker: Process) -> None:
    assert worker.popen.poll() is None, worker.output()[-3000:]
    assert "Unrecoverable error" not in worker.output()


def assert_nothing_left_waiting() -> None:
    assert not JobRun.objects.filter(
        status__in=(Status.PENDING, Status.QUEUED, Status.RUNNING)
    ).exists()


def summary(first: JobRun) -> list[tuple[int, str]]:
    return [(r.attempt, r.status) for r in attempts(first)]


def job_lines(path: Path) -> list[str]:
    """The lines tests.slow_append / tests.long_append wrote, without the process ids."""
    return [line.split(" pid=")[0] for line in lines(path)]
