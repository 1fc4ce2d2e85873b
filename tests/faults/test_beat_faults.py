"""The fault matrix, scheduling side: beat killed with SIGKILL before and after it commits a
batch, two beats with one killed, a worker's pool process killed mid-run, and a steady load
of schedules every minute. Each row counts the executions the job really made against the
history: every occurrence ran exactly once, and nothing is left pending, queued or running.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime

import pytest

from jobs_catalog.models import JobDefinition
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.faults.conftest import FAULT_MARKS
from tests.faults.matrix import executions, occurrences, outcome, report, scale, unsettled
from tests.support.processes import celery_beat, celery_worker, wait_for

pytestmark = FAULT_MARKS
Status = JobRun.Status


def minute(m: int, s: int = 0) -> datetime:
    return datetime(2026, 6, 1, 12, m, s, tzinfo=UTC)


def every_minute(platform, names: list[str], marker) -> list[Schedule]:
    job = JobDefinition.objects.get(name="tests.touch_file")
    return [
        save_schedule(
            Schedule(
                name=name,
                job=job,
                cron="* * * * *",
                params={"path": str(marker), "text": name},
                queue=platform.queue,
            ),
            validate=False,  # hundreds of identical schedules: validated once by the form tests
        )
        for name in names
    ]


def settled(expected: int) -> bool:
    return JobRun.objects.count() >= expected and not unsettled()


def check(row: str, marker, names: list[str], minutes: int) -> None:
    """Each schedule ran once a minute, as its history says, and nothing else ran."""
    expected = f"{len(names) * minutes} succeeded; each ran {minutes}x; active: none"
    observed = outcome(occurrences(), executions(marker), names)
    assert report(row, expected, observed), observed


@pytest.mark.parametrize(
    ("point", "left"),
    [
        # The batch's transaction dies with beat: nothing was committed.
        ("before_commit", set()),
        # Committed, never sent: the next beat's sweep publishes them.
        ("after_commit", {Status.PENDING}),
    ],
)
def test_beat_killed_at_its_batch_commit(fault_platform, point, left):
    p = fault_platform
    p.set_time(minute(0))
    marker = p.tmp_path / "ran.txt"
    names = [f"s{i}" for i in range(5)]
    every_minute(p, names, marker)
    failing = dict(p.env, SCHEDULER_FAILPOINT=f"{point}:{p.tmp_path}/hit")
    with celery_worker(p.tmp_path, p.env, queues=p.queue):
        with celery_beat(p.tmp_path, failing, name="doomed") as doomed:
            p.set_time(minute(0, 58))
            wait_for((p.tmp_path / "hit").exists, 30, "beat to reach the failpoint")
            os.killpg(doomed.popen.pid, signal.SIGKILL)
            doomed.popen.wait(10)
        assert set(JobRun.objects.values_list("status", flat=True)) == left
        with celery_beat(p.tmp_path, p.env, name="survivor"):
            wait_for(lambda: settled(5), 30, "the 12:01 runs")
    check(f"beat SIGKILL {point.replace('_', ' ')}", marker, names, 1)


def test_two_beats_one_killed_mid_minute(fault_platform):
    p = fault_platform
    p.set_time(minute(0))
    marker = p.tmp_path / "ran.txt"
    names = [f"s{i:02d}" for i in range(40)]
    every_minute(p, names, marker)
    minutes = 4
    with celery_worker(p.tmp_path, p.env, queues=p.queue, concurrency=2):
        with celery_beat(p.tmp_path, p.env, name="beat-b"):
            with celery_beat(p.tmp_path, p.env, name="beat-a") as doomed:
                for m in range(1, minutes + 1):
                    p.set_time(minute(m, 0))
                    if m == 3:  # killed while both claim the minute's batch
                        os.killpg(doomed.popen.pid, signal.SIGKILL)
                        doomed.popen.wait(10)
                    wait_for(lambda m=m: settled(40 * m), 60, f"minute {m}")
                    if m < minutes:
                        p.set_time(minute(m, 59))
    check("two beats, one SIGKILLed", marker, names, minutes)


def test_a_pool_process_killed_mid_run_is_rerun_once(fault_platform):
    p = fault_platform
    p.set_time(minute(0))
    marker = p.tmp_path / "crash.txt"
    job = JobDefinition.objects.get(name="tests.crashable")
    save_schedule(
        Schedule(
            name="crash", job=job, cron="1 12 * * *", params={"path": str(marker)}, queue=p.queue
        )
    )
    with celery_worker(p.tmp_path, p.env, queues=p.queue) as worker:
        with celery_beat(p.tmp_path, p.env):
            p.set_time(minute(0, 59))
            wait_for(marker.exists, 30, "the first attempt to start")
            child = wait_for(
                lambda: (
                    JobRun.objects.filter(status=Status.RUNNING)
                    .values_list("worker_pid", flat=True)
                    .first()
                ),
                10,
                "the running attempt",
            )
            assert child != worker.popen.pid
            os.kill(child, signal.SIGKILL)
            wait_for(lambda: settled(2), 30, "the rerun")
    lines = marker.read_text().splitlines()
    attempts = JobRun.objects.order_by("attempt").values_list("attempt", "status")
    history = ", ".join(f"{n} {status}" for n, status in attempts)
    observed = f"attempts {history}; job done {sum('done' in x for x in lines)}x"
    expected = "attempts 1 lost, 2 succeeded; job done 1x"
    assert report("pool process SIGKILL", expected, observed), observed
    assert not unsettled()


def test_schedules_every_minute_under_load(fault_platform):
    p = fault_platform
    size = scale()
    p.set_time(minute(0))
    marker = p.tmp_path / "ran.txt"
    names = [f"s{i:04d}" for i in range(size.load_schedules)]
    every_minute(p, names, marker)
    n = size.load_schedules
    with celery_worker(p.tmp_path, p.env, queues=p.queue, concurrency=2):
        with celery_beat(p.tmp_path, p.env):
            for m in range(1, size.load_minutes + 1):
                p.set_time(minute(m, 0))
                wait_for(lambda m=m: settled(n * m), 60 + n / 10, f"minute {m}")
                if m < size.load_minutes:
                    p.set_time(minute(m, 59))
    check(f"{n} schedules a minute for {size.load_minutes} min", marker, names, size.load_minutes)
