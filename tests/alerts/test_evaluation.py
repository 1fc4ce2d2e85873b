"""The rules applied to real runs on the real database, through the run events the worker
and beat send: incidents opened, counted, reminded and resolved; deliveries recorded for the
right channels, holding no secret; and the cost of a run that needs no alert."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduler.alerts import effective as config
from scheduler.alerts.models import AlertChannel, AlertDelivery, Incident
from scheduler.runs import events as run_events
from scheduler.runs.models import JobRun
from tests.alerts.conftest import TOKEN, policy

pytestmark = pytest.mark.django_db
Status = JobRun.Status
Kind = Incident.Kind


def deliveries(**filters) -> list[tuple[str, str]]:
    rows = AlertDelivery.objects.filter(**filters).order_by("id")
    return [(d.channel_name, d.event) for d in rows]


def finish(run: JobRun) -> None:
    """What the worker does when a run ends."""
    run_events.finished(run.pk, run.status, run.schedule_id)


@pytest.fixture
def mail_and_hook(db) -> list[AlertChannel]:
    return [
        AlertChannel.objects.create(name="mail", kind="email", recipients="oncall@example.com"),
        AlertChannel.objects.create(name="hook", kind="webhook", url="http://127.0.0.1:9/h"),
        AlertChannel.objects.create(
            name="sentry", kind="sentry", sentry_dsn="http://k@127.0.0.1:9/1"
        ),
    ]


def test_a_failure_opens_one_incident_further_ones_count_and_a_success_resolves_it(
    make_schedule, make_run, mail_and_hook, clock, django_capture_on_commit_callbacks
):
    schedule = make_schedule()
    policy(schedule, mail_and_hook)
    with django_capture_on_commit_callbacks() as callbacks:
        first = make_run(schedule, Status.FAILED)
        finish(first)
    [incident] = Incident.objects.all()
    assert (incident.kind, incident.schedule, incident.count) == (Kind.FAILED, schedule, 1)
    assert incident.first_run_id == incident.last_run_id == first.pk
    assert deliveries() == [("mail", "opened"), ("hook", "opened"), ("sentry", "opened")]
    # The alert task is queued after the commit (never sent inline), so is the check-in.
    assert sorted(c.__qualname__.split(".<locals>")[0] for c in callbacks) == [
        "Queueing.enqueue_after_commit",
        "report",
    ]

    for _ in range(3):
        clock.advance(minutes=1)
        last = make_run(schedule, Status.TIMED_OUT)
        finish(last)
    incident.refresh_from_db()
    assert incident.count == 4 and incident.last_run_id == last.pk and incident.is_open
    assert len(deliveries()) == 3  # nothing new

    clock.advance(minutes=1)
    finish(make_run(schedule, Status.SUCCEEDED))
    incident.refresh_from_db()
    assert incident.resolved_at == clock.now()
    assert "succeeded again" in incident.resolution and "4 failures" in incident.resolution
    # Sentry hears of the recovery through its check-in, not an event.
    assert deliveries(event="resolved") == [("mail", "resolved"), ("hook", "resolved")]
    # A new failure after that is a new incident.
    finish(make_run(schedule, Status.FAILED))
    assert Incident.objects.filter(resolved_at__isnull=True).count() == 1
    assert Incident.objects.count() == 2


def test_an_attempt_that_will_be_retried_alerts_nobody(make_schedule, make_run, mail_and_hook):
    schedule = make_schedule()
    policy(schedule, mail_and_hook)
    finish(make_run(schedule, Status.RETRYING))
    assert not Incident.objects.exists()
    finish(make_run(schedule, Status.FAILED, attempt=2))
    assert Incident.objects.get().count == 1


def test_no_secret_reaches_an_incident_or_a_delivery(make_schedule, make_run, mail_and_hook):
    schedule = make_schedule()
    policy(schedule, mail_and_hook)
    finish(make_run(schedule, Status.FAILED))
    incident = Incident.objects.get()
    assert "service refused token ********" in incident.last_error
    stored = json.dumps([d.payload for d in AlertDelivery.objects.all()])
    assert TOKEN not in stored and TOKEN not in incident.last_error + incident.title
    assert "service refused token ********" in stored
    for channel in mail_and_hook:  # nor a channel's secrets
        for secret in channel.secret_values():
            assert secret not in stored


def test_the_failure_threshold_counts_occurrences_in_a_row(make_schedule, make_run, mail_and_hook):
    schedule = make_schedule()
    policy(schedule, mail_and_hook, failure_threshold=3)
    finish(make_run(schedule, Status.FAILED))
    finish(make_run(schedule, Status.LOST))
    finish(make_run(schedule, Status.SUCCEEDED))  # the streak starts again
    finish(make_run(schedule, Status.FAILED))
    # A retried occurrence counts once: its retry attempt is the same occurrence.
    first = make_run(schedule, Status.RETRYING)
    finish(first)
    finish(make_run(schedule, Status.FAILED, occurrence=first, attempt=2))
    finish(make_run(schedule, Status.SKIPPED))  # did not run: neither fails nor breaks
    assert not Incident.objects.filter(kind=Kind.FAILED).exists()
    finish(make_run(schedule, Status.FAILED))
    incident = Incident.objects.get(kind=Kind.FAILED)
    assert incident.count == 3 and "3 occurrences in a row" in incident.title


def test_failure_alerts_off_and_default_channels(make_schedule, make_run, mail_and_hook, settings):
    quiet = make_schedule("quiet")
    policy(quiet, mail_and_hook, on_failure=False)
    finish(make_run(quiet, Status.FAILED))
    assert not Incident.objects.exists()

    # A schedule with no policy follows the settings and goes to the default channels.
    _, hook, _ = mail_and_hook
    AlertChannel.objects.filter(pk=hook.pk).update(is_default=True)
    AlertChannel.objects.create(
        name="off", kind="webhook", url="http://x", is_default=True, enabled=False
    )
    config.clear()
    loud = make_schedule("loud")
    finish(make_run(loud, Status.FAILED))
    assert deliveries() == [("hook", "opened")]

    settings.ALERTS_ON_FAILURE = False
    other = make_schedule("other")
    finish(make_run(other, Status.FAILED))
    assert Incident.objects.count() == 1


def test_reminders_follow_the_interval_until_acknowledged(
    make_schedule, make_run, mail_and_hook, clock, admin_user
):
    schedule = make_schedule()
    policy(schedule, mail_and_hook[:1], reminder_interval=600)
    finish(make_run(schedule, Status.FAILED))
    clock.advance(minutes=5)
    finish(make_run(schedule, Status.FAILED))
    assert deliveries() == [("mail", "opened")]
    clock.advance(minutes=6)
    finish(make_run(schedule, Status.FAILED))
    assert deliveries() == [("mail", "opened"), ("mail", "reminder")]
    reminder = AlertDelivery.objects.get(event="reminder")
    assert reminder.payload["title"] == f"Still failing: {schedule.name}"
    assert "3 times" in reminder.payload["summary"]

    from scheduler.alerts.incidents import acknowledge

    assert acknowledge(Incident.objects.all(), admin_user, clock.now()) == 1
    clock.advance(minutes=30)
    finish(make_run(schedule, Status.FAILED))
    assert len(deliveries()) == 2
    assert Incident.objects.get().count == 4


def test_a_run_skipped_by_the_overlap_policy_is_a_missed_run(
    make_schedule, make_run, mail_and_hook
):
    schedule = make_schedule()
    policy(schedule, mail_and_hook[:2])
    skipped = make_run(schedule, Status.SKIPPED, note="skipped: a run was going")
    run_events.finished(skipped)  # the worker's overlap check
    incident = Incident.objects.get()
    assert incident.kind == Kind.MISSED and "skipped: a run was going" in incident.title
    # Beat's own skips count on it; occurrences beat missed while down (or paused) do not.
    beat_rows = [
        JobRun(schedule=schedule, status=Status.SKIPPED, note="skipped: a run was still going"),
        JobRun(schedule=schedule, status=Status.MISSED, note="not run: beat was down"),
    ]
    run_events.not_started(beat_rows)
    incident.refresh_from_db()
    assert incident.count == 2
    assert deliveries() == [("mail", "opened"), ("hook", "opened")]  # no Sentry: Crons sees it
    finish(make_run(schedule, Status.SUCCEEDED))
    incident.refresh_from_db()
    assert not incident.is_open and "2 missed occurrences" in incident.resolution


def test_beat_missing_occurrences_alone_opens_nothing(make_schedule):
    schedule = make_schedule()
    run_events.not_started([JobRun(schedule=schedule, status=Status.MISSED, note="paused")])
    assert not Incident.objects.exists()


def test_runs_without_a_schedule_are_not_alerted(make_run, mail_and_hook):
    AlertChannel.objects.update(is_default=True)
    finish(make_run(None, Status.FAILED))
    assert not Incident.objects.exists()


def test_a_run_that_needs_no_alert_costs_at_most_one_query(make_schedule, make_run):
    schedule = make_schedule()
    started = make_run(schedule, Status.RUNNING)
    config.cached_channels()  # warm the per-process cache, as a worker's is
    with CaptureQueriesContext(connection) as start_queries:
        run_events.started(started.pk, started.schedule_id, started.task_name)
    assert len(start_queries) == 0
    JobRun.objects.filter(pk=started.pk).update(status=Status.SUCCEEDED)
    # What the start told the callbacks' receiver (no callback): it asks nothing either.
    no_callback = {"callback_url": None, "callback_channel": None}
    with CaptureQueriesContext(connection) as by_id:
        run_events.finished(
            started.pk, Status.SUCCEEDED, started.schedule_id, facts=no_callback
        )  # as the worker sends it
    started.status = Status.SUCCEEDED
    with CaptureQueriesContext(connection) as by_row:
        run_events.finished(started, facts=no_callback)
    for queries in (by_id, by_row):
        assert len(queries) == 1
        assert "scheduler_incident" in queries[0]["sql"]
    # A worker knows from the run's start that nothing was open: no query at all.
    with CaptureQueriesContext(connection) as known:
        run_events.finished(
            started.pk,
            Status.SUCCEEDED,
            started.schedule_id,
            facts={"incident_open": False, **no_callback},
        )
    assert len(known) == 0


def test_a_success_whose_start_saw_an_open_incident_resolves_it(
    make_schedule, make_run, mail_and_hook
):
    schedule = make_schedule()
    finish(make_run(schedule, Status.FAILED))
    assert Incident.objects.get().is_open
    ok = make_run(schedule, Status.SUCCEEDED)
    run_events.finished(ok.pk, Status.SUCCEEDED, schedule.pk, facts={"incident_open": True})
    assert not Incident.objects.get().is_open


def test_a_receiver_that_fails_never_fails_the_run(make_schedule, make_run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("alerting is broken")

    monkeypatch.setattr("scheduler.alerts.hooks.any_open", broken)
    run = make_run(make_schedule(), Status.FAILED)
    run_events.finished(run)  # logged, not raised
    assert not Incident.objects.exists()


def test_a_concurrent_opening_counts_on_the_incident_already_open(make_schedule, make_run, clock):
    from scheduler.alerts.incidents import open_incident, schedule_key

    schedule = make_schedule()
    key = schedule_key(schedule.pk, Kind.FAILED)
    kwargs = dict(key=key, kind=Kind.FAILED, schedule=schedule, title="t", channels=list)
    first = open_incident(now=clock.now(), **kwargs)
    second = open_incident(now=clock.now() + timedelta(seconds=1), **kwargs)
    assert first.pk == second.pk
    assert Incident.objects.get().count == 2
