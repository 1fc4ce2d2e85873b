"""The watchdog on the real database with an injected clock: beat not running, a queue backed
up, many schedules at once (one platform incident), runs running too long, the lease that
lets one process run each pass, and what a quiet pass costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduler.alerts import watchdog, watchdog_runner
from scheduler.alerts.incidents import PLATFORM_MISSED
from scheduler.alerts.models import AlertChannel, AlertDelivery, Incident, WatchdogLease
from scheduler.beat import events as beat_events
from scheduler.beat.models import BeatEntry
from scheduler.policies.jitter import jitter_offset
from scheduler.runs import events as run_events
from scheduler.runs.models import JobRun
from tests.alerts.conftest import policy

pytestmark = pytest.mark.django_db
Status = JobRun.Status
Kind = Incident.Kind
NOW = datetime(2026, 6, 1, 12, 10, tzinfo=UTC)


@pytest.fixture
def hook(db) -> AlertChannel:
    return AlertChannel.objects.create(
        name="hook", kind="webhook", url="http://127.0.0.1:9/h", is_default=True
    )


def due(schedule, at: datetime) -> None:
    """Beat's index says the schedule's next occurrence is due ``at``."""
    BeatEntry.objects.update_or_create(
        periodic_task=schedule.periodic_task, defaults={"next_fire_at": at, "due_at": at}
    )


def events() -> list[tuple[str, str]]:
    return list(AlertDelivery.objects.order_by("id").values_list("event", "payload__kind"))


def test_beat_not_running_makes_a_missed_incident_once_per_schedule(make_schedule, hook):
    late, on_time, patient, paused = (
        make_schedule(n) for n in ("late", "on time", "patient", "paused")
    )
    policy(patient, grace=3600)
    due(paused, NOW - timedelta(hours=1))
    PeriodicTask.objects.filter(pk=paused.periodic_task_id).update(enabled=False)
    due(late, NOW - timedelta(seconds=301))  # the default grace is 300 s
    due(on_time, NOW - timedelta(seconds=250))
    due(patient, NOW - timedelta(seconds=600))
    report = watchdog.run_checks(NOW)
    assert report.overdue == 1
    incident = Incident.objects.get()
    assert (incident.schedule, incident.kind, incident.count) == (late, Kind.MISSED, 1)
    assert "is beat running?" in incident.title
    assert events() == [("opened", "missed")]
    # Still overdue on the next passes: the same incident, counted once, said once.
    watchdog.run_checks(NOW + timedelta(seconds=15))
    watchdog.run_checks(NOW + timedelta(seconds=30))
    assert Incident.objects.get().count == 1 and len(events()) == 1


def test_an_occurrence_waiting_in_the_queue_past_its_grace(make_schedule, make_run, hook):
    schedule = make_schedule("queued", jitter=120)
    offset = jitter_offset(schedule.pk, 120)
    scheduled = NOW - offset - timedelta(seconds=300)
    make_run(
        schedule,
        Status.QUEUED,
        scheduled_for=scheduled + timedelta(seconds=2),
        created_at=scheduled,
    )
    assert watchdog.run_checks(NOW).unstarted == 0  # within grace once its jitter counts
    # Asked for late (a backfill of an old time): late from when it was asked for.
    make_run(
        schedule,
        Status.QUEUED,
        scheduled_for=NOW - timedelta(days=3),
        created_at=NOW - timedelta(seconds=60),
        trigger=JobRun.Trigger.BACKFILL,
    )
    assert watchdog.run_checks(NOW).unstarted == 0
    run = make_run(
        schedule,
        Status.QUEUED,
        scheduled_for=scheduled - timedelta(seconds=2),
        created_at=scheduled - timedelta(seconds=3),
    )
    watchdog.run_checks(NOW)
    incident = Incident.objects.get()
    assert incident.kind == Kind.MISSED and incident.last_run_id == run.pk
    assert "waits in the queue" in incident.title


def test_many_schedules_missing_at_once_are_one_platform_incident(make_schedule, hook, settings):
    settings.ALERTS_STORM_THRESHOLD = 3
    schedules = [make_schedule(f"s{i}") for i in range(5)]
    for schedule in schedules:
        due(schedule, NOW - timedelta(minutes=10))
    watchdog.run_checks(NOW)
    incident = Incident.objects.get()
    assert (incident.key, incident.schedule, incident.count) == (PLATFORM_MISSED, None, 5)
    assert "5 schedules did not start in time" in incident.title
    watchdog.run_checks(NOW + timedelta(seconds=15))
    assert Incident.objects.count() == 1 and events() == [("opened", "missed")]
    # Beat is back: nothing overdue, the platform incident is resolved, and it is said.
    BeatEntry.objects.update(due_at=NOW + timedelta(minutes=1))
    report = watchdog.run_checks(NOW + timedelta(seconds=30))
    assert report.resolved == 1
    incident.refresh_from_db()
    assert not incident.is_open
    assert events() == [("opened", "missed"), ("resolved", "missed")]


def test_a_run_running_too_long_while_it_runs_and_when_it_ends(
    make_schedule, make_run, hook, settings
):
    schedule = make_schedule("slow")
    policy(schedule, max_runtime=60)
    quick = make_schedule("quick")  # no maximum: never too long
    make_run(quick, Status.RUNNING, started_at=NOW - timedelta(hours=2))
    run = make_run(schedule, Status.RUNNING, started_at=NOW - timedelta(seconds=59))
    assert watchdog.run_checks(NOW).too_long == 0
    report = watchdog.run_checks(NOW + timedelta(seconds=2))
    assert report.too_long == 1
    incident = Incident.objects.get()
    assert (incident.kind, incident.last_run_id) == (Kind.TOO_LONG, run.pk)
    assert "has been running for 61 s, longer than its maximum of 60 s" in incident.title
    watchdog.run_checks(NOW + timedelta(seconds=20))
    assert Incident.objects.get().count == 1 and len(events()) == 1
    # The run ends: the incident is over, and said to be.
    JobRun.objects.filter(pk=run.pk).update(
        status=Status.SUCCEEDED, finished_at=NOW + timedelta(seconds=30)
    )
    run_events.finished(run.pk, Status.SUCCEEDED, run.schedule_id)
    incident.refresh_from_db()
    assert not incident.is_open and incident.resolution.startswith("The long run ended: succeeded")
    assert events() == [("opened", "too_long"), ("resolved", "too_long")]


def test_a_too_long_run_that_ends_unannounced_is_resolved_by_the_watchdog(
    make_schedule, make_run, hook
):
    schedule = make_schedule("slow")
    policy(schedule, max_runtime=60)
    run = make_run(schedule, Status.RUNNING, started_at=NOW - timedelta(minutes=5))
    watchdog.run_checks(NOW)
    JobRun.objects.filter(pk=run.pk).update(status=Status.LOST)  # no run_finished
    assert watchdog.run_checks(NOW + timedelta(seconds=15)).resolved == 1
    assert not Incident.objects.get().is_open


def test_a_pass_with_nothing_wrong_costs_a_few_queries_whatever_the_number_of_schedules(
    make_schedule, make_run, hook
):
    for i in range(30):
        schedule = make_schedule(f"fine {i}")
        due(schedule, NOW + timedelta(minutes=1))
        make_run(schedule, Status.SUCCEEDED)
    watchdog.run_checks(NOW)  # warm the configuration cache
    with CaptureQueriesContext(connection) as queries:
        watchdog.run_checks(NOW)
    reads = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    # overdue entries, unstarted runs, the platform incident, open too-long incidents,
    # pending deliveries and callbacks (the too-long read is skipped: no schedule has a
    # maximum).
    assert len(reads) == 6, reads


def test_the_lease_lets_one_process_run_each_pass():
    now = timezone.now()
    assert watchdog_runner.acquire("test", 10, now)
    assert not watchdog_runner.acquire("test", 10, now + timedelta(seconds=5))
    assert watchdog_runner.acquire("test", 10, now + timedelta(seconds=10))
    lease = WatchdogLease.objects.get(name="test")
    assert lease.holder == watchdog_runner.holder()


def test_maybe_run_runs_once_per_interval_and_never_raises(settings, monkeypatch):
    settings.ALERTS_WATCHDOG_INTERVAL = 30
    monkeypatch.setattr(watchdog_runner, "_next_try", 0.0)
    clock = type("Fixed", (), {"now": staticmethod(lambda: NOW)})()
    assert watchdog_runner.maybe_run(clock) is not None
    assert watchdog_runner.maybe_run(clock) is None  # not this process's turn yet
    monkeypatch.setattr(watchdog_runner, "_next_try", 0.0)
    assert watchdog_runner.maybe_run(clock) is None  # the lease is held for the interval

    def broken(now):
        raise RuntimeError("database gone")

    monkeypatch.setattr(watchdog_runner, "_next_try", 0.0)
    WatchdogLease.objects.all().delete()
    monkeypatch.setattr(watchdog_runner.watchdog, "run_checks", broken)
    assert watchdog_runner.maybe_run(clock) is None
    settings.ALERTS_WATCHDOG_INTERVAL = 0
    monkeypatch.setattr(watchdog_runner, "_next_try", 0.0)
    assert watchdog_runner.maybe_run(clock) is None


def test_beat_offers_a_pass_at_each_turn_of_its_loop_by_its_clock(settings, monkeypatch):
    settings.ALERTS_WATCHDOG_INTERVAL = 30
    monkeypatch.setattr(watchdog_runner, "_next_try", 0.0)
    passes: list[datetime] = []

    def run_checks(now: datetime) -> watchdog.Report:
        passes.append(now)
        return watchdog.Report()

    monkeypatch.setattr(watchdog_runner.watchdog, "run_checks", run_checks)
    clock = type("Fixed", (), {"now": staticmethod(lambda: NOW)})()
    # Connected by the scheduler app's ready(): beat itself knows nothing of alerting.
    beat_events.loop_turned.send(None, clock=clock)
    assert passes == [NOW]
