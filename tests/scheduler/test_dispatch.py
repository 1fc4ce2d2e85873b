"""The beat pass on the real database and broker: exactly once, misfire and overlap
policies, crash recovery, and every django-celery-beat schedule type."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from scheduler.beat import events as beat_events
from scheduler.beat.changes import ChangeFeed
from scheduler.beat.dispatch import Dispatcher
from scheduler.beat.entries import reconcile
from scheduler.beat.models import BeatChange, BeatEntry
from scheduler.beat.scheduler import DatabaseScheduler
from scheduler.policies.jitter import jitter_offset
from scheduler.runs import actions as run_actions
from scheduler.runs.models import JobRun
from scheduler.schedules import services
from scheduler.schedules.models import MisfirePolicy, OverlapPolicy
from tests.scheduler.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status
T0 = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def dispatcher(clock):
    return Dispatcher(current_app, clock)


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 6, 1, 12, minute, second, tzinfo=UTC)


def statuses(schedule) -> list[tuple[str, str]]:
    return [
        (o.scheduled_for.strftime("%H:%M"), o.status)
        for o in JobRun.objects.filter(schedule=schedule).order_by("scheduled_for")
    ]


def test_an_occurrence_is_committed_then_published_once(
    clock, dispatcher, make_schedule, queue_name
):
    schedule = make_schedule()
    reconcile(clock.now())
    entry = BeatEntry.objects.get(pk=schedule.periodic_task_id)
    assert entry.next_fire_at == at(1) and entry.due_at == at(1)
    assert dispatcher.run_due() == 0  # nothing due at 12:00:30
    clock.set(at(1, 0))
    assert dispatcher.run_due() == 1
    assert dispatcher.run_due() == 0  # the same instant again: nothing twice
    [occurrence] = JobRun.objects.filter(schedule=schedule)
    assert occurrence.status == Status.QUEUED and occurrence.scheduled_for == at(1)
    assert occurrence.published_at == at(1) and occurrence.trigger == "beat"
    [(headers, kwargs)] = drain(queue_name)
    assert kwargs == schedule.params
    assert headers["occurrence_id"] == occurrence.pk and headers["schedule_id"] == schedule.pk
    assert headers["id"] == str(occurrence.task_id)
    entry.refresh_from_db()
    assert entry.next_fire_at == at(2) and entry.last_fire_at == at(1)


def test_a_crash_between_commit_and_publish_loses_and_duplicates_nothing(
    clock, dispatcher, make_schedule, queue_name, monkeypatch
):
    schedule = make_schedule()
    reconcile(clock.now())
    clock.set(at(1))

    def crash(outgoing):
        raise SystemExit("killed after commit")

    monkeypatch.setattr(dispatcher.outbox, "publish", crash)
    with pytest.raises(SystemExit):
        dispatcher.run_due()
    monkeypatch.undo()
    [occurrence] = JobRun.objects.filter(schedule=schedule)
    assert occurrence.status == Status.PENDING and occurrence.published_at is None
    assert drain(queue_name, timeout=0.5) == []
    # A restarted beat publishes what was committed, once.
    restarted = Dispatcher(current_app, clock)
    assert restarted.run_due() == 0  # the entry already moved on: not claimed again
    assert restarted.sweep(min_age=timedelta(0)) == 1
    assert restarted.sweep(min_age=timedelta(0)) == 0
    [(headers, _)] = drain(queue_name)
    assert headers["occurrence_id"] == occurrence.pk
    occurrence.refresh_from_db()
    assert occurrence.status == Status.QUEUED


@pytest.mark.parametrize(
    ("policy", "cap", "expected_runs", "expected_missed"),
    [
        (MisfirePolicy.RUN_ONCE, 10, ["12:10"], 9),
        (MisfirePolicy.SKIP, 10, ["12:10"], 9),
        (MisfirePolicy.RUN_ALL, 3, ["12:08", "12:09", "12:10"], 7),
    ],
)
def test_misfire_policies_after_beat_downtime(
    clock, dispatcher, make_schedule, queue_name, policy, cap, expected_runs, expected_missed
):
    schedule = make_schedule(misfire_policy=policy, max_catchup_runs=cap)
    reconcile(clock.now())
    clock.set(at(10, 5))  # beat was down from 12:00:30 to 12:10:05
    dispatcher.run_due()
    runs = [t for t, s in statuses(schedule) if s == Status.QUEUED]
    missed = [t for t, s in statuses(schedule) if s == Status.MISSED]
    assert runs == expected_runs and len(missed) == expected_missed
    assert len(drain(queue_name)) == len(expected_runs)
    assert BeatEntry.objects.get(pk=schedule.periodic_task_id).next_fire_at == at(11)


def test_skip_policy_records_a_late_lone_occurrence_as_missed(
    clock, dispatcher, make_schedule, queue_name
):
    schedule = make_schedule(cron="0 * * * *", misfire_policy=MisfirePolicy.SKIP)
    reconcile(clock.now())
    clock.set(datetime(2026, 6, 1, 13, 20, tzinfo=UTC))
    dispatcher.run_due()
    assert statuses(schedule) == [("13:00", Status.MISSED)]
    assert drain(queue_name, timeout=0.5) == []


@pytest.mark.parametrize(("grace", "expected"), [(60, Status.QUEUED), (10, Status.MISSED)])
def test_the_misfire_grace_is_a_setting(
    clock, dispatcher, make_schedule, queue_name, settings, grace, expected
):
    # Beat was down for 30 s over 12:01: within the default grace that is merely late; with
    # a grace of 10 s it is a misfire, which the skip policy records as missed.
    settings.SCHEDULER_MISFIRE_GRACE = grace
    schedule = make_schedule(misfire_policy=MisfirePolicy.SKIP)
    reconcile(clock.now())
    clock.set(at(1, 30))
    dispatcher.run_due()
    assert statuses(schedule) == [("12:01", expected)]


def test_an_occurrence_sent_at_its_jittered_time_is_on_time(
    clock, dispatcher, make_schedule, queue_name
):
    # Published up to 50 minutes after its time by design: not a misfire, even under skip.
    # An id whose offset is well beyond the grace (the offset is fixed per id).
    pk = next(n for n in range(10**6, 10**6 + 100) if jitter_offset(n, 3000).seconds > 600)
    schedule = make_schedule(
        cron="0 * * * *", jitter=3000, misfire_policy=MisfirePolicy.SKIP, id=pk
    )
    reconcile(clock.now())
    entry = BeatEntry.objects.get(pk=schedule.periodic_task_id)
    assert entry.due_at - entry.next_fire_at > timedelta(seconds=60)  # beyond the grace
    clock.set(entry.due_at + timedelta(seconds=1))
    dispatcher.run_due()
    assert statuses(schedule) == [("13:00", Status.QUEUED)]


def test_occurrences_older_than_the_catchup_window_are_not_run(
    clock, dispatcher, make_schedule, queue_name
):
    schedule = make_schedule(catchup_window=120)
    reconcile(clock.now())
    clock.set(at(30, 1))
    dispatcher.run_due()
    assert [t for t, s in statuses(schedule)] == ["12:29", "12:30"]
    assert dict(statuses(schedule))["12:30"] == Status.QUEUED


def test_pause_then_resume_applies_the_misfire_policy(clock, dispatcher, make_schedule, queue_name):
    schedule = make_schedule()
    reconcile(clock.now())
    feed = ChangeFeed()
    feed.start()
    services.pause(schedule, None, note="maintenance")
    reconcile(clock.now(), feed.poll())
    assert BeatEntry.objects.get(pk=schedule.periodic_task_id).due_at is None
    clock.set(at(5, 10))
    assert dispatcher.run_due() == 0  # paused: nothing
    services.resume(schedule)
    reconcile(clock.now(), feed.poll())
    dispatcher.run_due()
    assert statuses(schedule)[-1] == ("12:05", Status.QUEUED)
    assert [s for _, s in statuses(schedule)].count(Status.MISSED) == 4


def test_overlap_skip_records_the_skipped_occurrence(clock, dispatcher, make_schedule, queue_name):
    schedule = make_schedule(overlap_policy=OverlapPolicy.SKIP)
    reconcile(clock.now())
    clock.set(at(1))
    dispatcher.run_due()
    JobRun.objects.filter(schedule=schedule).update(status=Status.RUNNING)
    clock.set(at(2))
    dispatcher.run_due()
    assert statuses(schedule) == [("12:01", Status.RUNNING), ("12:02", Status.SKIPPED)]
    assert len(drain(queue_name)) == 1


def test_overlap_buffer_one_keeps_at_most_one_waiting(clock, dispatcher, make_schedule, queue_name):
    schedule = make_schedule(overlap_policy=OverlapPolicy.BUFFER_ONE)
    reconcile(clock.now())
    clock.set(at(1))
    dispatcher.run_due()
    JobRun.objects.filter(schedule=schedule).update(status=Status.RUNNING)
    for minute in (2, 3):
        clock.set(at(minute))
        dispatcher.run_due()
    assert statuses(schedule) == [
        ("12:01", Status.RUNNING),
        ("12:02", Status.BUFFERED),
        ("12:03", Status.SKIPPED),
    ]
    # The running one ends (its worker died, say): the sweep releases the buffered one.
    JobRun.objects.filter(status=Status.RUNNING).update(status=Status.SUCCEEDED)
    assert dispatcher.sweep() == 1
    assert dict(statuses(schedule))["12:02"] == Status.QUEUED
    assert len(drain(queue_name)) == 2


def test_changes_are_seen_through_the_journal(clock, dispatcher, make_schedule, queue_name):
    schedule = make_schedule()
    reconcile(clock.now())
    feed = ChangeFeed()
    feed.start()
    assert feed.poll() == set()
    # The contract of django-celery-beat: QuerySet.update() on the crontab is seen too.
    CrontabSchedule.objects.filter(pk=schedule.periodic_task.crontab_id).update(minute="30")
    changed = feed.poll()
    assert changed == {schedule.periodic_task_id}
    reconcile(clock.now(), changed)
    assert BeatEntry.objects.get(pk=schedule.periodic_task_id).next_fire_at == at(30)
    # Bookkeeping columns do not wake beat: they are not even journaled.
    journaled = BeatChange.objects.count()
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(total_run_count=5)
    assert BeatChange.objects.count() == journaled
    assert feed.poll() == set()


def test_an_arguments_edit_keeps_the_pending_occurrence(clock, make_schedule):
    schedule = make_schedule()
    reconcile(clock.now())
    clock.set(at(3))  # overdue (beat down); an edit must not silently drop 12:01..12:03
    feed = ChangeFeed()
    feed.start()
    schedule.params = {"url": "http://127.0.0.1:9/other"}
    from scheduler.schedules.periodic import save_schedule

    save_schedule(schedule)
    reconcile(clock.now(), feed.poll())
    assert BeatEntry.objects.get(pk=schedule.periodic_task_id).next_fire_at == at(1)


def plain_task(name: str, queue: str, **schedule) -> PeriodicTask:
    return PeriodicTask.objects.create(
        name=name,
        task="builtin.http_request",
        queue=queue,
        kwargs=json.dumps({"url": "http://127.0.0.1:9/"}),
        **schedule,
    )


def test_plain_interval_task_runs_every_period(clock, dispatcher, queue_name):
    every = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    task = plain_task("interval", queue_name, interval=every)
    reconcile(clock.now())
    assert BeatEntry.objects.get(pk=task.pk).next_fire_at == T0 + timedelta(seconds=30)
    clock.advance(seconds=95)
    dispatcher.run_due()
    # 12:01:00, 12:01:30, 12:02:00 were due; run once for them all (the default policy).
    occurrences = JobRun.objects.filter(periodic_task=task)
    assert sorted(o.status for o in occurrences) == ["missed", "missed", "queued"]
    assert BeatEntry.objects.get(pk=task.pk).next_fire_at == T0 + timedelta(seconds=120)
    assert len(drain(queue_name)) == 1


def test_plain_clocked_one_off_runs_once_then_is_disabled(clock, dispatcher, queue_name):
    when = ClockedSchedule.objects.create(clocked_time=at(5))
    task = plain_task("clocked", queue_name, clocked=when, one_off=True)
    reconcile(clock.now())
    clock.set(at(5, 1))
    assert dispatcher.run_due() == 1
    clock.set(at(50))
    assert dispatcher.run_due() == 0
    task.refresh_from_db()
    assert not task.enabled and task.total_run_count == 1
    assert len(drain(queue_name)) == 1


def test_plain_crontab_honours_start_time_and_expires(clock, dispatcher, queue_name):
    cron = CrontabSchedule.objects.create(minute="*", timezone="UTC")
    task = plain_task("window", queue_name, crontab=cron, start_time=at(3), expires=at(4, 30))
    reconcile(clock.now())
    assert BeatEntry.objects.get(pk=task.pk).next_fire_at == at(3)
    for minute in range(1, 7):
        clock.set(at(minute))
        dispatcher.run_due()
    times = sorted(o.scheduled_for for o in JobRun.objects.filter(periodic_task=task))
    assert times == [at(3), at(4)]
    assert BeatEntry.objects.get(pk=task.pk).due_at is None


def test_solar_is_refused_with_a_clear_message(clock, dispatcher, queue_name, caplog):
    sun = SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4)
    task = plain_task("solar", queue_name, solar=sun)
    reconcile(clock.now())
    entry = BeatEntry.objects.get(pk=task.pk)
    assert entry.due_at is None and "solar schedules are not supported" in entry.error
    assert "solar schedules are not supported" in caplog.text


def test_disabled_plain_task_is_not_run(clock, dispatcher, queue_name):
    cron = CrontabSchedule.objects.create(minute="*", timezone="UTC")
    task = plain_task("off", queue_name, crontab=cron, enabled=False)
    reconcile(clock.now())
    clock.set(at(5))
    assert dispatcher.run_due() == 0
    assert not JobRun.objects.filter(periodic_task=task).exists()


def test_jitter_is_stable_per_schedule(clock, make_schedule):
    schedule = make_schedule(jitter=30)
    reconcile(clock.now())
    entry = BeatEntry.objects.get(pk=schedule.periodic_task_id)
    offset = entry.due_at - entry.next_fire_at
    assert timedelta(0) <= offset < timedelta(seconds=30)
    assert offset == jitter_offset(schedule.pk, 30)


def test_run_now_and_backfill(clock, make_schedule, queue_name, monkeypatch):
    schedule = make_schedule(cron="*/15 * * * *")
    monkeypatch.setattr("scheduler.beat.dispatch.get_clock", lambda: clock, raising=False)
    occurrence = run_actions.run_now(schedule)
    assert occurrence.trigger == "manual" and occurrence.status == Status.QUEUED
    start = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    made = run_actions.backfill(schedule, start, start + timedelta(hours=1))
    assert [o.scheduled_for.minute for o in made] == [15, 30, 45, 0]
    assert {o.trigger for o in made} == {"backfill"}
    # Times that already have an occurrence are left alone: nothing twice.
    assert run_actions.backfill(schedule, start, start + timedelta(hours=1)) == []
    assert len(drain(queue_name)) == 5
    with pytest.raises(ValueError, match="more than 500"):
        run_actions.backfill(schedule, start - timedelta(days=30), start)


def test_buffered_release_is_not_blocked_by_plain_task_occurrences(
    clock, dispatcher, make_schedule, queue_name
):
    cron = CrontabSchedule.objects.create(minute="*", timezone="UTC")
    plain_task("plain", queue_name, crontab=cron)
    schedule = make_schedule(overlap_policy=OverlapPolicy.BUFFER_ONE)
    reconcile(clock.now())
    clock.set(at(1))
    dispatcher.run_due()  # the plain task's occurrence stays queued (no schedule)
    JobRun.objects.filter(schedule=schedule).update(status=Status.RUNNING)
    clock.set(at(2))
    dispatcher.run_due()
    JobRun.objects.filter(schedule=schedule, status=Status.RUNNING).update(status=Status.SUCCEEDED)
    assert dispatcher.sweep() == 1
    assert dict(statuses(schedule))["12:02"] == Status.QUEUED


def test_beat_follows_the_dst_rules_of_the_schedule_zone(clock, dispatcher, make_schedule):
    """Berlin, spring 2026-03-29 (02:00 -> 03:00) and autumn 2026-10-25 (03:00 -> 02:00)."""
    fixed = make_schedule("fixed", cron="30 2 * * *", timezone="Europe/Berlin")
    hourly = make_schedule("hourly", cron="0 * * * *", timezone="Europe/Berlin")

    def run_day(start: datetime, hours: int) -> None:
        clock.set(start)
        reconcile(clock.now())
        for step in range(hours * 4 + 1):  # every quarter hour, like a beat waking up
            clock.set(start + timedelta(minutes=15 * step))
            dispatcher.run_due()

    def fired(schedule, day_start: datetime, day_end: datetime) -> list[datetime]:
        return list(
            JobRun.objects.filter(
                schedule=schedule, scheduled_for__gte=day_start, scheduled_for__lt=day_end
            )
            .order_by("scheduled_for")
            .values_list("scheduled_for", flat=True)
        )

    spring = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 CET on the short day
    run_day(spring - timedelta(minutes=5), 24)
    # 02:30 does not exist: it fires once, at the jump (03:00 CEST = 01:00 UTC).
    assert fired(fixed, spring, spring + timedelta(hours=23)) == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    ]
    assert len(fired(hourly, spring, spring + timedelta(hours=23))) == 23

    autumn = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # 00:00 CEST on the long day
    run_day(autumn - timedelta(minutes=5), 26)
    # 02:30 happens twice: it fires once, at the first (02:30 CEST = 00:30 UTC).
    assert fired(fixed, autumn, autumn + timedelta(hours=25)) == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    ]
    assert len(fired(hourly, autumn, autumn + timedelta(hours=25))) == 25


def test_a_run_left_queued_is_republished_then_lost_with_an_alert(
    clock, dispatcher, make_schedule, queue_name, settings, announced
):
    settings.SCHEDULER_REPUBLISH_AFTER = 300
    settings.SCHEDULER_REPUBLISH_LIMIT = 2
    schedule = make_schedule(cron="*/15 * * * *")
    run = dispatcher.outbox.enqueue(schedule, [at(0)], "manual")[0]
    retry_due = clock.now() + timedelta(seconds=600)
    later = JobRun.objects.create(  # a retry published with its countdown: not late yet
        schedule=schedule,
        periodic_task=schedule.periodic_task,
        task_name="x",
        scheduled_for=at(15),
        status=Status.QUEUED,
        attempt=2,
        occurrence=run,
        published_at=clock.now(),
        next_attempt_at=retry_due,
    )
    assert len(drain(queue_name)) == 1
    clock.advance(seconds=299)
    assert dispatcher.sweep() == 0  # not late yet
    # Each sweep past the bound publishes it again; the retry once past its due time too.
    for republished, expected in ((1, {run.pk}), (2, {run.pk, later.pk})):
        clock.advance(seconds=301)
        dispatcher.sweep()
        assert {headers["occurrence_id"] for headers, _ in drain(queue_name)} == expected
        row = JobRun.objects.get(pk=run.pk)
        assert (row.status, row.republished) == (Status.QUEUED, republished)
    assert JobRun.objects.get(pk=later.pk).republished == 1
    drain(queue_name)
    clock.advance(seconds=301)
    dispatcher.sweep()
    row = JobRun.objects.get(pk=run.pk)
    assert (row.status, row.error_type) == (Status.LOST, "NeverStarted")
    assert "published 3 times" in row.error_message
    assert ("finished", run.pk, schedule.pk, "lost") in announced
    # Only the retry, with a republish left, was published again.
    assert [headers["occurrence_id"] for headers, _ in drain(queue_name, 0.5)] == [later.pk]


class QuietFeed:
    """A change feed with nothing new and no wait."""

    def poll(self) -> list:
        return []

    def prune(self) -> None:
        pass

    def wait(self, seconds: float) -> None:
        pass


def test_each_turn_of_beats_loop_is_announced_with_its_clock(clock, dispatcher):
    # Alerting's watchdog rides on this signal (beat imports nothing from alerting).
    beat = DatabaseScheduler.__new__(DatabaseScheduler)  # no setup: no publishers, no LISTEN
    beat.app, beat.clock, beat.feed, beat.dispatcher = current_app, clock, QuietFeed(), dispatcher
    beat._next_sweep = beat._next_prune = float("inf")
    turns: list = []

    def on_turn(sender, clock, **kwargs):
        turns.append(clock)

    beat_events.loop_turned.connect(on_turn, dispatch_uid="test.turn")
    try:
        assert beat._tick() == 0.0
    finally:
        beat_events.loop_turned.disconnect(dispatch_uid="test.turn")
    assert turns == [clock]
