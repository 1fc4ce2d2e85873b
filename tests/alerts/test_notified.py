"""An incident is marked notified only with a delivery per channel that took it, chosen from
the channels and policy as the database has them at that moment, whatever this process read
before; an incident that notified nobody says so (queryable, on its page and in the list) and
is announced at its next failure to the channels that apply then.

Another process's change is made here without Django's save signals (``bulk_create``,
``update``), so this process's cache is not cleared for it, as in a worker."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps

from scheduler.alerts import effective as config
from scheduler.alerts import watchdog
from scheduler.alerts.channels import takes
from scheduler.alerts.models import AlertChannel, AlertDelivery, AlertPolicy, Incident
from scheduler.beat.models import BeatEntry
from scheduler.runs import events as run_events
from scheduler.runs.models import JobRun
from tests.alerts.conftest import policy

pytestmark = pytest.mark.django_db
Status = JobRun.Status
Kind = Incident.Kind
INCIDENTS = "/admin/scheduler/incident/"


def finish(run: JobRun) -> None:
    run_events.finished(run.pk, run.status, run.schedule_id)


def added_elsewhere(name: str, kind: str = "webhook", **fields) -> AlertChannel:
    """A default channel saved by another process: no signal reaches this one."""
    defaults = {"url": f"http://127.0.0.1:9/{name}", "is_default": True}
    if kind == "sentry":
        defaults = {"sentry_dsn": "http://k@127.0.0.1:9/1", "is_default": True}
    AlertChannel.objects.bulk_create([AlertChannel(name=name, kind=kind, **{**defaults, **fields})])
    return AlertChannel.objects.get(name=name)


def sent_to(incident: Incident) -> list[tuple[str, str]]:
    rows = incident.deliveries.order_by("id")
    return [(d.channel_name, d.event) for d in rows]


def assert_notified_means_delivered() -> None:
    """The invariant: an incident marked notified has deliveries; one not marked has none."""
    for incident in Incident.objects.all():
        assert incident.notified_nobody is not incident.deliveries.exists(), incident


@pytest.fixture
def warm() -> None:
    """This process has read the (empty) channel list and the defaults, as a worker has
    after its first run."""
    config.cached_channels()
    assert config.sentry_in_use() is False


def test_a_channel_added_elsewhere_after_the_cache_was_warm_gets_the_first_alert(
    make_schedule, make_run, warm
):
    schedule = make_schedule()
    hook = added_elsewhere("hook")
    finish(make_run(schedule, Status.FAILED))
    incident = Incident.objects.get()
    assert sent_to(incident) == [("hook", "opened")]
    assert incident.deliveries.get().channel == hook
    assert not incident.notified_nobody
    assert_notified_means_delivered()


def test_one_delivery_per_channel_that_takes_the_alert(make_schedule, make_run, warm, clock):
    schedule = make_schedule()
    for name, kind in (("mail", "email"), ("hook", "webhook"), ("sentry", "sentry")):
        added_elsewhere(name, kind, recipients="oncall@example.com")
    added_elsewhere("off", enabled=False)
    added_elsewhere("not default", is_default=False)
    finish(make_run(schedule, Status.FAILED))
    failed = Incident.objects.get(kind=Kind.FAILED)
    assert sorted(sent_to(failed)) == [("hook", "opened"), ("mail", "opened"), ("sentry", "opened")]
    # A missed run: Sentry does not take it (its check-ins say so), the others do.
    run_events.finished(make_run(schedule, Status.SKIPPED, note="skipped: a run was going"))
    missed = Incident.objects.get(kind=Kind.MISSED)
    assert sorted(sent_to(missed)) == [("hook", "opened"), ("mail", "opened")]
    every = {c.pk: c for c in AlertChannel.objects.filter(enabled=True, is_default=True)}
    for incident, event in ((failed, "opened"), (missed, "opened")):
        taking = {pk for pk, c in every.items() if takes(c, incident.kind, event)}
        assert set(incident.deliveries.values_list("channel_id", flat=True)) == taking
    assert_notified_means_delivered()


def test_an_incident_no_channel_took_notified_nobody_until_one_applies(
    make_schedule, make_run, clock, warm
):
    schedule = make_schedule()
    policy(schedule, reminder_interval=600)
    finish(make_run(schedule, Status.FAILED))
    incident = Incident.objects.get()
    assert incident.notified_nobody and incident.last_notified_at is None
    assert list(Incident.objects.notified_nobody()) == [incident]
    assert not AlertDelivery.objects.exists()

    clock.advance(minutes=1)
    finish(make_run(schedule, Status.FAILED))  # still nobody to tell
    incident.refresh_from_db()
    assert incident.count == 2 and incident.notified_nobody

    added_elsewhere("hook")
    clock.advance(minutes=1)
    finish(make_run(schedule, Status.FAILED))
    incident.refresh_from_db()
    # Announced as opened (nobody had heard of it), marked notified with it.
    assert sent_to(incident) == [("hook", "opened")]
    assert incident.last_notified_at == clock.now() and incident.count == 3
    assert not Incident.objects.notified_nobody().exists()
    # From then on the reminder interval applies as usual.
    clock.advance(minutes=1)
    finish(make_run(schedule, Status.FAILED))
    assert sent_to(incident) == [("hook", "opened")]
    clock.advance(minutes=10)
    finish(make_run(schedule, Status.FAILED))
    assert sent_to(incident) == [("hook", "opened"), ("hook", "reminder")]
    assert_notified_means_delivered()


def test_an_acknowledged_incident_that_notified_nobody_stays_quiet(
    make_schedule, make_run, clock, admin_user, warm
):
    from scheduler.alerts.incidents import acknowledge

    schedule = make_schedule()
    finish(make_run(schedule, Status.FAILED))
    acknowledge(Incident.objects.all(), admin_user, clock.now())
    added_elsewhere("hook")
    finish(make_run(schedule, Status.FAILED))
    incident = Incident.objects.get()
    assert incident.count == 2 and incident.notified_nobody and not AlertDelivery.objects.exists()


def test_a_channel_disabled_and_another_added_between_two_events(
    make_schedule, make_run, clock, warm
):
    schedule = make_schedule()
    policy(schedule, reminder_interval=60)
    first = added_elsewhere("first")
    finish(make_run(schedule, Status.FAILED))
    incident = Incident.objects.get()
    assert sent_to(incident) == [("first", "opened")]
    notified = incident.last_notified_at

    AlertChannel.objects.filter(pk=first.pk).update(enabled=False)
    clock.advance(minutes=2)
    finish(make_run(schedule, Status.FAILED))  # a reminder is due, but no channel takes it
    incident.refresh_from_db()
    assert incident.last_notified_at == notified  # not marked: nothing was recorded
    assert sent_to(incident) == [("first", "opened")]

    added_elsewhere("second")
    clock.advance(seconds=1)
    finish(make_run(schedule, Status.FAILED))  # still due: it goes to the new channel
    incident.refresh_from_db()
    assert sent_to(incident) == [("first", "opened"), ("second", "reminder")]
    assert incident.last_notified_at == clock.now()

    clock.advance(minutes=1)
    finish(make_run(schedule, Status.SUCCEEDED))
    assert sent_to(incident)[-1] == ("second", "resolved")
    assert_notified_means_delivered()


def test_a_resolution_nobody_takes_leaves_the_incident_notified_nobody(
    make_schedule, make_run, clock, warm
):
    schedule = make_schedule()
    finish(make_run(schedule, Status.FAILED))
    finish(make_run(schedule, Status.SUCCEEDED))
    incident = Incident.objects.get()
    assert not incident.is_open and incident.notified_nobody


def test_a_policy_changed_elsewhere_counts_at_once(make_schedule, make_run, clock):
    schedule = make_schedule()
    added_elsewhere("hook")
    row = policy(schedule)
    assert config.cached_policy_for(schedule.pk).on_failure  # this process has read it
    AlertPolicy.objects.filter(pk=row.pk).update(on_failure=False)
    finish(make_run(schedule, Status.FAILED))
    assert not Incident.objects.exists()
    AlertPolicy.objects.filter(pk=row.pk).update(on_failure=None, failure_threshold=2)
    finish(make_run(schedule, Status.FAILED))
    assert Incident.objects.get().count == 2  # two in a row: the threshold read just now


def test_the_watchdog_alerts_to_a_channel_added_elsewhere(make_schedule, clock, warm):
    schedule = make_schedule()
    BeatEntry.objects.update_or_create(
        periodic_task=schedule.periodic_task,
        defaults={"next_fire_at": clock.now(), "due_at": clock.now() - timedelta(minutes=10)},
    )
    added_elsewhere("hook")
    watchdog.run_checks(clock.now())
    incident = Incident.objects.get()
    assert (incident.kind, sent_to(incident)) == (Kind.MISSED, [("hook", "opened")])
    assert_notified_means_delivered()


def test_incidents_that_notified_nobody_in_the_list_and_on_their_page(
    admin_client, make_schedule, make_run, clock
):
    quiet, heard = make_schedule("quiet one"), make_schedule("heard one")
    finish(make_run(quiet, Status.FAILED))
    added_elsewhere("hook")
    finish(make_run(heard, Status.FAILED))
    nobody = Incident.objects.get(schedule=quiet)
    heard_title = Incident.objects.get(schedule=heard).title
    listed = admin_client.get(INCIDENTS).content.decode()
    assert "nobody" in listed
    only_nobody = admin_client.get(f"{INCIDENTS}?notified=nobody").content.decode()
    assert nobody.title in only_nobody and heard_title not in only_nobody
    only_someone = admin_client.get(f"{INCIDENTS}?notified=someone").content.decode()
    assert heard_title in only_someone and nobody.title not in only_someone
    page = admin_client.get(f"{INCIDENTS}{nobody.pk}/change/").content.decode()
    assert "no channel applied when it opened" in page


def test_the_migration_unmarks_incidents_marked_notified_without_a_delivery(
    make_schedule, make_run, clock
):
    migration = importlib.import_module("scheduler.migrations.0008_incident_notified_nobody")
    lost, told = make_schedule("lost"), make_schedule("told")
    finish(make_run(lost, Status.FAILED))
    hook = added_elsewhere("hook")
    finish(make_run(told, Status.FAILED))
    # What the old code left: marked notified, nothing recorded.
    Incident.objects.filter(schedule=lost).update(last_notified_at=clock.now())
    migration.unmark_unannounced(apps, None)
    assert list(Incident.objects.notified_nobody().values_list("schedule", flat=True)) == [lost.pk]
    assert Incident.objects.get(schedule=told).deliveries.get().channel == hook
