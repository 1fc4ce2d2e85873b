"""The reaper on the real database and broker: a run still marked running past its hard
time limit plus the grace is lost, and rerun when its policy allows; a direct call's
unpublishable retry is lost too; nothing else is touched."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from celery import current_app

from scheduler import reaper
from scheduler.models import JobRun
from tests.scheduler.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status


@pytest.fixture
def limit():
    """The hard time limit of tests.touch_file (the platform default)."""
    return timedelta(seconds=reaper.hard_time_limit(current_app, "tests.touch_file"))


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
