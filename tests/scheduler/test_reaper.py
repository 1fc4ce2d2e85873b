"""The reaper on the real database and broker: a run of a worker whose heartbeat stopped, or
(no heartbeat row) still marked running past its hard time limit plus the grace, is lost,
and rerun when its policy allows; a live worker's run is left alone; a direct call's
unpublishable retry is lost too; nothing else is touched."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from celery import current_app

from scheduler.runs import reaper
from scheduler.runs.heartbeats import Heartbeat
from scheduler.runs.models import JobRun, RunRequest, WorkerHeartbeat
from scheduler.runs.time_limits import hard_time_limit
from tests.scheduler.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status


@pytest.fixture
def limit():
    """The hard time limit of tests.touch_file (the platform default)."""
    return timedelta(seconds=hard_time_limit(current_app, "tests.touch_file"))


def running(schedule=None, **fields) -> JobRun:
    defaults = {
        "task_name": "tests.touch_file",
        "status": Status.RUNNING,
        "max_attempts": 3,
        "worker_host": "w1@gone",
    }
    if schedule is not None:
        defaults.update(schedule=schedule, periodic_task=schedule.periodic_task)
    return JobRun.objects.create(**{**defaults, **fields})


def test_a_run_past_its_hard_limit_is_lost_and_rerun(
    clock, make_schedule, queue_name, limit, settings, announced
):
    settings.SCHEDULER_REAPER_GRACE = 30
    schedule = make_schedule(job="tests.touch_file", params={"path": "/tmp/x"})
    now = clock.now()
    stuck = running(
        schedule, scheduled_for=now - limit, started_at=now - limit - timedelta(seconds=31)
    )
    recent = running(schedule, scheduled_for=now, started_at=now - limit)  # within the grace
    assert reaper.reap(current_app, clock) == 1
    stuck.refresh_from_db()
    assert (stuck.status, stuck.error_type, stuck.finished_at) == ("lost", "WorkerLost", now)
    assert "hard time" in stuck.error_message and "w1@gone" in stuck.error_message
    rerun = JobRun.objects.get(occurrence=stuck)
    assert (rerun.attempt, rerun.trigger, rerun.status) == (2, "retry", "queued")
    assert JobRun.objects.get(pk=recent.pk).status == Status.RUNNING
    [(headers, kwargs)] = drain(queue_name)
    assert headers["occurrence_id"] == rerun.pk and kwargs["path"] == "/tmp/x"
    assert reaper.reap(current_app, clock) == 0  # nothing twice
    assert announced == []  # lost, with a rerun to come: no failure yet


def test_no_rerun_without_attempts_left_or_for_a_direct_call(
    clock, make_schedule, queue_name, limit, announced
):
    schedule = make_schedule(job="tests.touch_file", params={"path": "/tmp/x"})
    long_ago = clock.now() - limit - timedelta(hours=1)
    last = running(schedule, scheduled_for=long_ago, started_at=long_ago, attempt=3)
    direct = running(scheduled_for=long_ago, started_at=long_ago, trigger="direct")
    assert reaper.reap(current_app, clock) == 2
    assert {r.status for r in JobRun.objects.filter(pk__in=[last.pk, direct.pk])} == {"lost"}
    assert JobRun.objects.count() == 2 and drain(queue_name, 0.5) == []
    # Both occurrences failed: announced (alerting listens to the one with a schedule).
    assert sorted(announced, key=lambda a: a[1]) == [
        ("finished", last.pk, schedule.pk, "lost"),
        ("finished", direct.pk, None, "lost"),
    ]


def test_a_direct_calls_retry_left_unpublished_is_lost(clock, settings):
    settings.SCHEDULER_REAPER_GRACE = 60
    now = clock.now()
    orphan = JobRun.objects.create(
        task_name="tests.touch_file",
        scheduled_for=now,
        trigger="retry",
        status=Status.PENDING,
        attempt=2,
        created_at=now - timedelta(seconds=120),
        next_attempt_at=now - timedelta(seconds=90),
    )
    waiting = JobRun.objects.create(
        task_name="tests.touch_file",
        scheduled_for=now,
        trigger="retry",
        status=Status.PENDING,
        attempt=2,
        task_id=uuid.uuid4(),
        created_at=now - timedelta(seconds=120),
        next_attempt_at=now + timedelta(seconds=90),  # its backoff is not over
    )
    assert reaper.reap(current_app, clock) == 1
    orphan.refresh_from_db()
    assert (orphan.status, orphan.error_type) == ("lost", "NeverPublished")
    assert JobRun.objects.get(pk=waiting.pk).status == Status.PENDING


def test_tick_reaps_once_per_interval(clock, monkeypatch):
    passes = []
    monkeypatch.setattr(reaper, "reap", lambda app, clk, **kw: passes.append(1) or 0)
    monkeypatch.setattr(reaper, "_next_pass", 0.0)
    reaper.tick(current_app, clock)
    reaper.tick(current_app, clock)
    assert passes == [1]


# --- worker heartbeats ---------------------------------------------------------------------------
def beat(host: str, clock, seen_ago: float, started_ago: float = 3600) -> WorkerHeartbeat:
    now = clock.now()
    return WorkerHeartbeat.objects.create(
        hostname=host,
        pid=1,
        started_at=now - timedelta(seconds=started_ago),
        last_seen_at=now - timedelta(seconds=seen_ago),
    )


def test_a_silent_workers_run_is_lost_at_once_and_rerun(
    clock, make_schedule, queue_name, settings, announced
):
    settings.SCHEDULER_WORKER_LOST_AFTER = 60
    schedule = make_schedule(job="tests.touch_file", params={"path": "/tmp/x"})
    now = clock.now()
    beat("w1@dead", clock, seen_ago=61)
    beat("w2@alive", clock, seen_ago=5)
    started = now - timedelta(seconds=20)  # far from any time limit
    dead = running(schedule, scheduled_for=now, started_at=started, worker_host="w1@dead")
    alive = running(
        schedule,
        scheduled_for=now - timedelta(minutes=1),
        started_at=started,
        worker_host="w2@alive",
    )
    assert reaper.reap(current_app, clock) == 1
    dead.refresh_from_db()
    assert (dead.status, dead.error_type) == ("lost", "WorkerLost")
    assert "w1@dead" in dead.error_message and "stopped sending heartbeats" in dead.error_message
    assert JobRun.objects.get(occurrence=dead).status == "queued"  # rerun
    assert JobRun.objects.get(pk=alive.pk).status == "running"
    assert len(drain(queue_name)) == 1


def test_a_live_workers_run_is_left_alone_past_its_limit_until_the_hung_bound(
    clock, make_schedule, limit, settings
):
    settings.SCHEDULER_REAPER_GRACE = 30
    schedule = make_schedule(job="tests.touch_file", params={"path": "/tmp/x"})
    now = clock.now()
    beat("w2@alive", clock, seen_ago=1, started_ago=10 * reaper.HUNG_WORKER_GRACE)
    past_limit = running(
        schedule,
        scheduled_for=now,
        worker_host="w2@alive",
        started_at=now - limit - timedelta(seconds=600),  # an end still being written
    )
    assert reaper.reap(current_app, clock) == 0
    assert JobRun.objects.get(pk=past_limit.pk).status == "running"
    hung = timedelta(seconds=reaper.HUNG_WORKER_GRACE + 1)
    JobRun.objects.filter(pk=past_limit.pk).update(started_at=now - limit - hung)
    assert reaper.reap(current_app, clock) == 1
    assert "worker is stuck" in JobRun.objects.get(pk=past_limit.pk).error_message


def test_a_run_of_an_earlier_incarnation_of_a_worker_is_lost(clock, make_schedule):
    schedule = make_schedule(job="tests.touch_file", params={"path": "/tmp/x"})
    now = clock.now()
    beat("w1@host", clock, seen_ago=1, started_ago=5)  # restarted 5 s ago, same name
    old = running(
        schedule, scheduled_for=now, worker_host="w1@host", started_at=now - timedelta(seconds=9)
    )
    assert reaper.reap(current_app, clock) == 1
    assert "was restarted" in JobRun.objects.get(pk=old.pk).error_message


def test_silence_proves_nothing_until_the_reaper_has_watched_long_enough(
    clock, make_schedule, settings, monkeypatch
):
    """After a database outage every heartbeat is stale: no worker could write one."""
    settings.SCHEDULER_WORKER_LOST_AFTER = 60
    schedule = make_schedule(job="tests.touch_file", params={"path": "/tmp/x"})
    now = clock.now()
    beat("w1@host", clock, seen_ago=120)
    run = running(
        schedule, scheduled_for=now, worker_host="w1@host", started_at=now - timedelta(seconds=9)
    )
    assert reaper.reap(current_app, clock, judge_heartbeats=False) == 0
    monotonic = [1000.0]
    monkeypatch.setattr(reaper.time, "monotonic", lambda: monotonic[0])
    monkeypatch.setattr(reaper, "_next_pass", 0.0)
    monkeypatch.setattr(reaper, "_last_pass", 0.0)  # long ago: the reaper could not look
    assert reaper.tick(current_app, clock) == 0
    assert JobRun.objects.get(pk=run.pk).status == "running"
    monotonic[0] += 61  # watched for a whole LOST_AFTER, passes on time meanwhile
    monkeypatch.setattr(reaper, "_last_pass", monotonic[0] - 10)
    monkeypatch.setattr(reaper, "_next_pass", 0.0)
    assert reaper.tick(current_app, clock) == 1


def test_the_heartbeat_upserts_one_row_and_removes_it_on_shutdown(clock):
    heartbeat = Heartbeat("w9@host", clock)
    assert heartbeat.beat() and heartbeat.beat()
    row = WorkerHeartbeat.objects.get()
    assert (row.hostname, row.last_seen_at, row.started_at) == ("w9@host", clock.now(), clock.now())
    heartbeat.stop()
    assert not WorkerHeartbeat.objects.exists()


def test_an_applications_lost_run_is_rerun_from_its_request(clock, queue_name, limit):
    long_ago = clock.now() - limit - timedelta(hours=1)
    stuck = running(scheduled_for=long_ago, started_at=long_ago, trigger="api", queue=queue_name)
    RunRequest.objects.create(run=stuck, kwargs={"path": "/tmp/api"})
    assert reaper.reap(current_app, clock) == 1
    rerun = JobRun.objects.get(occurrence=stuck)
    assert (rerun.attempt, rerun.status, rerun.queue) == (2, "queued", queue_name)
    [(headers, kwargs)] = drain(queue_name)
    assert headers["attempt_id"] == rerun.pk and kwargs == {"path": "/tmp/api"}
