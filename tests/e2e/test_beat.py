"""Real ``celery beat`` and ``celery worker`` processes, with time driven through a file clock:
an occurrence runs once; two beats produce no duplicate; a beat killed between commit and
publish loses and duplicates nothing; misfire after an outage; overlap with a slow job."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection

from jobs_catalog.models import JobDefinition
from scheduler.beat.models import BeatEntry
from scheduler.runs.models import JobRun
from scheduler.schedules.models import MisfirePolicy, OverlapPolicy, Schedule
from scheduler.schedules.periodic import save_schedule
from tests.support.processes import celery_beat, celery_worker, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status
#: Three seconds before 12:01: set once the processes are ready (``ready``), so no test
#: depends on how fast they start. Until then the clock runs from 12:00.
START = datetime(2026, 6, 1, 12, 0, 57, tzinfo=UTC)


def minute(m: int, s: int = 0) -> datetime:
    return datetime(2026, 6, 1, 12, m, s, tzinfo=UTC)


def touch_schedule(platform, name: str, cron: str = "* * * * *", **fields) -> tuple[Schedule, Path]:
    marker = platform.tmp_path / f"{name}.txt"
    job = JobDefinition.objects.get(name=fields.pop("job", "tests.touch_file"))
    params = fields.pop("params", {"path": str(marker)})
    schedule = Schedule(
        name=name, job=job, cron=cron, params=params, queue=platform.queue, **fields
    )
    return save_schedule(schedule), marker


def ready(platform) -> None:
    """The processes are up: move the clock to three seconds before 12:01."""
    platform.set_time(START)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def settled(expected: int) -> bool:
    """At least ``expected`` occurrences exist and none is still active."""
    query = JobRun.objects.all()
    active = query.filter(status__in=JobRun.ACTIVE).exists()
    done = not active and query.count() >= expected
    if not done:
        settled.last = sorted(query.values_list("task_name", "scheduled_for", "status"))[-5:]
    return done


def test_an_occurrence_runs_once(platform):
    platform.set_time(minute(0))
    schedule, marker = touch_schedule(platform, "once")
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue):
        with celery_beat(platform.tmp_path, platform.env):
            ready(platform)
            wait_for(lambda: len(lines(marker)) >= 1, 30, "the 12:01 run")
            platform.set_time(minute(1, 58))
            wait_for(lambda: len(lines(marker)) >= 2, 30, "the 12:02 run")
            wait_for(lambda: settled(2), 20, "both occurrences to finish")
    occurrences = list(JobRun.objects.filter(schedule=schedule).order_by("scheduled_for"))
    assert [(o.scheduled_for, o.status) for o in occurrences] == [
        (minute(1), Status.SUCCEEDED),
        (minute(2), Status.SUCCEEDED),
    ]
    assert len(lines(marker)) == 2
    assert all(o.started_at and o.finished_at and o.published_at for o in occurrences)


@pytest.mark.postgres
def test_two_beats_together_produce_no_duplicate(platform):
    platform.set_time(minute(0))
    schedules = [touch_schedule(platform, f"s{i:02d}") for i in range(40)]
    env_b = dict(platform.env)
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue, concurrency=2):
        with (
            celery_beat(platform.tmp_path, platform.env, name="beat-a"),
            celery_beat(platform.tmp_path, env_b, name="beat-b"),
        ):
            for m in range(1, 6):
                platform.set_time(minute(m, 0))
                try:
                    wait_for(lambda m=m: settled(40 * m), 60, f"minute {m} to finish")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}: {getattr(settled, 'last', None)}") from None
                if m < 5:  # beats commit the next minute's runs ahead: leave minute 6 out
                    platform.set_time(minute(m, 59))
    assert {len(lines(marker)) for _, marker in schedules} == {5}
    assert JobRun.objects.count() == 200
    assert set(JobRun.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}


def test_beat_killed_between_commit_and_publish_loses_and_duplicates_nothing(platform):
    platform.set_time(minute(0))
    schedule, marker = touch_schedule(platform, "crash")
    failing = dict(platform.env, SCHEDULER_FAILPOINT=f"after_commit:{platform.tmp_path}/hit")
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue):
        with celery_beat(platform.tmp_path, failing, name="doomed") as doomed:
            ready(platform)
            wait_for((platform.tmp_path / "hit").exists, 30, "beat to reach the failpoint")
            os.killpg(doomed.popen.pid, signal.SIGKILL)
            doomed.popen.wait(10)
        [occurrence] = JobRun.objects.filter(schedule=schedule)
        assert occurrence.status == Status.PENDING and occurrence.published_at is None
        assert lines(marker) == []
        with celery_beat(platform.tmp_path, platform.env, name="survivor") as survivor:
            wait_for(lambda: len(lines(marker)) >= 1, 30, "the republished run")
            wait_for(lambda: settled(1), 20, "the run to finish")
            survivor.wait_for_output("1 unpublished occurrence(s) republished", timeout=5)
    assert len(lines(marker)) == 1
    occurrence.refresh_from_db()
    assert occurrence.status == Status.SUCCEEDED


def test_misfire_after_a_beat_outage(platform):
    platform.set_time(minute(0))
    once, once_marker = touch_schedule(platform, "run-once")
    skip, skip_marker = touch_schedule(platform, "skip", misfire_policy=MisfirePolicy.SKIP)
    each, each_marker = touch_schedule(
        platform, "each", misfire_policy=MisfirePolicy.RUN_ALL, max_catchup_runs=3
    )
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue):
        with celery_beat(platform.tmp_path, platform.env, name="before"):
            ready(platform)
            wait_for(lambda: settled(3), 30, "the 12:01 runs")
        platform.set_time(minute(1, 5))
        with celery_beat(platform.tmp_path, platform.env, name="after"):
            platform.set_time(minute(8, 30))  # beat was down from 12:01 to 12:08:30
            wait_for(lambda: settled(3 + 3 * 7), 30, "the catch-up")

    def summary(schedule):
        rows = JobRun.objects.filter(schedule=schedule).order_by("scheduled_for")
        return [(o.scheduled_for.minute, o.status) for o in rows]

    missed, ok = Status.MISSED, Status.SUCCEEDED
    assert summary(once) == [(1, ok)] + [(m, missed) for m in range(2, 8)] + [(8, ok)]
    # Skip: the missed ones are recorded, and the on-time 12:08 (within the grace) runs.
    assert summary(skip) == [(1, ok)] + [(m, missed) for m in range(2, 8)] + [(8, ok)]
    assert summary(each) == [(1, ok)] + [(m, missed) for m in range(2, 6)] + [
        (6, ok),
        (7, ok),
        (8, ok),
    ]
    assert (len(lines(once_marker)), len(lines(skip_marker)), len(lines(each_marker))) == (2, 2, 4)


def test_overlap_policies_with_a_slow_job(platform):
    platform.set_time(minute(0))
    sleep = {"seconds": 4}
    skip, _ = touch_schedule(
        platform, "skip", job="tests.sleep", params=sleep, overlap_policy=OverlapPolicy.SKIP
    )
    buffer, _ = touch_schedule(
        platform,
        "buffer",
        job="tests.sleep",
        params=sleep,
        overlap_policy=OverlapPolicy.BUFFER_ONE,
    )
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue, concurrency=2):
        with celery_beat(platform.tmp_path, platform.env):
            ready(platform)
            wait_for(
                lambda: JobRun.objects.filter(status=Status.RUNNING).count() == 2,
                30,
                "both 12:01 runs to start",
            )
            for m in (2, 3):  # two more occurrences while the first runs
                platform.set_time(minute(m, 0))
                wait_for(
                    lambda m=m: JobRun.objects.filter(scheduled_for=minute(m)).count() == 2,
                    20,
                    f"the 12:0{m} occurrences",
                )
            wait_for(lambda: settled(6), 40, "everything to finish")

    def summary(schedule):
        rows = JobRun.objects.filter(schedule=schedule).order_by("scheduled_for")
        return [(o.scheduled_for.minute, o.status) for o in rows]

    ok = Status.SUCCEEDED
    assert summary(skip) == [(1, ok), (2, Status.SKIPPED), (3, Status.SKIPPED)]
    # Buffer one: 12:02 waits and runs after 12:01 ends; 12:03 finds one waiting: skipped.
    assert summary(buffer) == [(1, ok), (2, ok), (3, Status.SKIPPED)]
    first, second = JobRun.objects.filter(schedule=buffer, status=ok).order_by("scheduled_for")
    assert second.started_at >= first.finished_at


def test_an_admin_edit_takes_effect_within_a_second(platform):
    platform.set_time(minute(0))
    schedule, marker = touch_schedule(platform, "edited", cron="30 12 * * *")
    entry = BeatEntry.objects.filter(pk=schedule.periodic_task_id)
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue):
        with celery_beat(platform.tmp_path, platform.env):
            # However long the processes took to start, the edit is made a minute before
            # the time it asks for: the test measures beat, not how fast processes start.
            platform.set_time(minute(0))
            wait_for(lambda: entry.filter(next_fire_at=minute(30)).exists(), 5, "beat to index")
            schedule.cron = "* * * * *"
            save_schedule(schedule)
            wait_for(lambda: entry.filter(next_fire_at=minute(1)).exists(), 1.0, "the edit")
            platform.set_time(minute(0, 58))
            wait_for(lambda: len(lines(marker)) >= 1, 10, "the edited schedule to fire")
    assert JobRun.objects.get(schedule=schedule).scheduled_for == minute(1)


def test_on_sqlite_a_second_beat_waits_for_the_first(platform):
    if connection.vendor != "sqlite":
        pytest.skip("on PostgreSQL beats share the work instead of waiting")
    platform.set_time(minute(0))
    with celery_beat(platform.tmp_path, platform.env, name="first") as first:
        with celery_beat(platform.tmp_path, platform.env, name="second", wait=False) as second:
            second.wait_for_output("another beat holds", timeout=30)
            assert "entries updated at start" not in second.output()
            first.stop()
            second.wait_for_output("entries updated at start", timeout=30)
