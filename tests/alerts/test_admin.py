"""Alerting in the admin through HTTP: channel secrets never shown again, "send test alert"
for those allowed, incidents listed and filtered with links to the runs and acknowledged by
operators only, deliveries read-only, and a schedule's alert overrides on its page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.staticfiles import finders
from django.urls import reverse

from scheduler.alerts.incidents import open_incident, schedule_key
from scheduler.alerts.models import AlertChannel, AlertDelivery, AlertPolicy, Incident
from scheduler.runs.models import JobRun
from tests.alerts.conftest import SIGNING, TOKEN

pytestmark = pytest.mark.django_db
CHANNELS = "/admin/scheduler/alertchannel/"
INCIDENTS = "/admin/scheduler/incident/"
SECRET_URL = "https://hooks.example.com/services/T0/B0/SeCrEtPaTh"
SENTRY_DSN = "https://key@sentry.example.com/42"


def channel_data(**overrides) -> dict:
    data = {
        "name": "chat",
        "kind": "webhook",
        "enabled": "on",
        "recipients": "",
        "url": SECRET_URL,
        "webhook_format": "slack",
        "signing_secret": SIGNING,
        "timeout": "5",
        "sentry_dsn": "",
    }
    data.update(overrides)
    return data


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def member(django_user_model, client):
    def make(group: str, *extra: str):
        user = django_user_model.objects.create_user(
            username=group.lower().replace(" ", "-"), password="x", is_staff=True
        )
        user.groups.add(Group.objects.get(name=group))
        for codename in extra:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        client.force_login(user)
        return client

    return make


def test_channel_secrets_are_stored_but_never_shown(admin_client):
    response = admin_client.post(f"{CHANNELS}add/", channel_data())
    assert response.status_code == 302
    channel = AlertChannel.objects.get()
    assert (channel.url, channel.signing_secret) == (SECRET_URL, SIGNING)
    listing = admin_client.get(CHANNELS).content.decode()
    page = admin_client.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
    assert "hooks.example.com/… (signed)" in listing
    for html in (listing, page):
        assert "SeCrEtPaTh" not in html and SIGNING not in html
    assert "Stored, not shown: leave empty to keep it." in page
    # Saving with the secrets left blank keeps them; "remove" removes the signing secret.
    admin_client.post(f"{CHANNELS}{channel.pk}/change/", channel_data(url="", signing_secret=""))
    channel.refresh_from_db()
    assert (channel.url, channel.signing_secret) == (SECRET_URL, SIGNING)
    admin_client.post(
        f"{CHANNELS}{channel.pk}/change/",
        channel_data(url="", signing_secret="", clear_signing_secret="on"),
    )
    channel.refresh_from_db()
    assert (channel.url, channel.signing_secret) == (SECRET_URL, "")


def test_bad_channel_input_is_refused_without_repeating_the_secret(admin_client, settings):
    settings.SENTRY_DSN = ""
    bad_url = "ftp://hooks.example.com/SeCrEtPaTh"
    response = admin_client.post(f"{CHANNELS}add/", channel_data(url=bad_url))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["url"] == ["Not a valid http(s) URL."]
    assert "SeCrEtPaTh" not in response.content.decode()
    response = admin_client.post(
        f"{CHANNELS}add/", channel_data(kind="email", recipients="oncall@, x@example.com")
    )
    assert response.context["adminform"].form.errors["recipients"] == [
        "Not an email address: oncall@"
    ]
    response = admin_client.post(f"{CHANNELS}add/", channel_data(kind="sentry"))
    assert "SENTRY_DSN is not set either" in str(response.context["adminform"].form.errors)
    assert not AlertChannel.objects.exists()


def test_send_test_alert_reaches_the_receiver_and_says_how_it_went(admin_client, webhook):
    ok = AlertChannel.objects.create(
        name="chat", kind="webhook", url=webhook.url, signing_secret=SIGNING
    )
    gone = AlertChannel.objects.create(
        name="gone", kind="webhook", url="http://127.0.0.1:9/SeCrEt", timeout=1
    )
    response = admin_client.post(
        CHANNELS,
        {"action": "send_test_alert", "_selected_action": [ok.pk, gone.pk]},
        follow=True,
    )
    messages = page_messages(response)
    assert "chat: test alert sent." in messages
    [failure] = [m for m in messages if m.startswith("gone: the test alert failed")]
    assert "SeCrEt" not in failure
    [hook] = webhook.hooks
    assert hook.verified and hook.json["kind"] == "test"
    assert sorted(AlertDelivery.objects.values_list("channel_name", "status")) == [
        ("chat", "sent"),
        ("gone", "failed"),
    ]


def test_only_those_allowed_see_channels_and_send_tests(member, webhook):
    AlertChannel.objects.create(name="chat", kind="webhook", url=webhook.url)
    operator = member("Schedule operators")
    assert operator.get(CHANNELS).status_code == 403
    client = member("Schedule editors", "view_alertchannel")
    response = client.get(CHANNELS)
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action it may use
    response = client.post(
        CHANNELS,
        {"action": "send_test_alert", "_selected_action": [AlertChannel.objects.get().pk]},
    )
    assert webhook.hooks == []


# --- a channel's page shows its kind's fields -----------------------------------------------
def fieldset_classes(html: str) -> list[str]:
    return re.findall(r'<fieldset class="([^"]*scheduler-kind[^"]*)"', html)


def test_a_new_channel_page_has_a_fieldset_per_kind_and_the_script_that_picks_one(admin_client):
    html = admin_client.get(f"{CHANNELS}add/").content.decode()
    classes = fieldset_classes(html)
    assert any("scheduler-kind-email" in c and "webhook" not in c for c in classes)
    assert any("scheduler-kind-webhook" in c and "email" not in c for c in classes)
    # The timeout is for the kinds that wait for a receiver.
    [delivery] = [c for c in classes if "webhook" in c and "sentry" in c]
    assert "email" not in delivery
    # The script comes from the app's static folder, not from another site.
    assert finders.find("scheduler/channel_kind.js") is not None
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', html)
    assert any(src.endswith("/static/scheduler/channel_kind.js") for src in scripts)
    assert all(src.startswith("/") for src in scripts), scripts
    # Nothing is stored yet: nothing to remove.
    assert 'name="clear_signing_secret"' not in html and 'name="clear_sentry_dsn"' not in html


def test_a_new_channel_needs_only_its_kinds_fields(admin_client):
    response = admin_client.post(
        f"{CHANNELS}add/",
        {"name": "mail", "kind": "email", "enabled": "on", "recipients": "oncall@example.com"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = AlertChannel.objects.get(name="mail")
    assert channel.recipient_list() == ["oncall@example.com"] and channel.timeout == 5.0
    # What was typed for another kind before the kind was changed is not kept.
    response = admin_client.post(
        f"{CHANNELS}add/", channel_data(name="sentry", kind="sentry", sentry_dsn=SENTRY_DSN)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    sentry = AlertChannel.objects.get(name="sentry")
    assert (sentry.url, sentry.signing_secret, sentry.sentry_dsn) == ("", "", SENTRY_DSN)


def test_a_stored_channels_page_has_only_its_kinds_fields(admin_client):
    mail = AlertChannel.objects.create(name="mail", kind="email", recipients="a@example.com")
    page = admin_client.get(f"{CHANNELS}{mail.pk}/change/").content.decode()
    assert 'name="recipients"' in page
    for field in ("url", "signing_secret", "sentry_dsn", "timeout", "webhook_format", "kind"):
        assert f'name="{field}"' not in page, field
    response = admin_client.post(
        f"{CHANNELS}{mail.pk}/change/",
        {"name": "mail", "enabled": "on", "recipients": "b@example.com", "kind": "webhook"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    mail.refresh_from_db()
    assert (mail.kind, mail.recipients) == ("email", "b@example.com")
    # The checkbox removing a secret is there when one is stored, and only then.
    unsigned = AlertChannel.objects.create(name="hook", kind="webhook", url=SECRET_URL)
    page = admin_client.get(f"{CHANNELS}{unsigned.pk}/change/").content.decode()
    assert 'name="url"' in page and 'name="recipients"' not in page
    assert 'name="clear_signing_secret"' not in page
    unsigned.signing_secret = SIGNING
    unsigned.save()
    page = admin_client.get(f"{CHANNELS}{unsigned.pk}/change/").content.decode()
    assert 'name="clear_signing_secret"' in page and 'name="clear_sentry_dsn"' not in page


@pytest.fixture
def incidents(make_schedule, make_run, clock):
    nightly, hourly = make_schedule("nightly"), make_schedule("hourly")
    run = make_run(nightly, JobRun.Status.FAILED)
    failing = open_incident(
        key=schedule_key(nightly.pk, "failed"),
        kind="failed",
        schedule=nightly,
        title="nightly (tests.fails_until_file) failed.",
        error="ConnectionError: service refused token ********",
        run=run,
        now=clock.now(),
        channels=list,
    )
    late = open_incident(
        key=schedule_key(hourly.pk, "missed"),
        kind="missed",
        schedule=hourly,
        title="hourly: not started",
        now=clock.now(),
        channels=list,
    )
    Incident.objects.filter(pk=late.pk).update(resolved_at=clock.now(), resolution="ran")
    return failing, late, run


def test_incidents_are_listed_filtered_and_link_to_the_runs(admin_client, incidents):
    failing, _, run = incidents
    page = admin_client.get(INCIDENTS).content.decode()
    assert "nightly (tests.fails_until_file) failed." in page and "hourly: not started" in page
    assert f'href="/admin/scheduler/jobrun/?schedule={failing.schedule_id}"' in page
    open_only = admin_client.get(f"{INCIDENTS}?state=open").content.decode()
    assert (
        "nightly (tests.fails_until_file) failed." in open_only
        and "hourly: not started" not in open_only
    )
    resolved = admin_client.get(f"{INCIDENTS}?state=resolved").content.decode()
    assert "hourly: not started" in resolved and "nightly (tests" not in resolved
    by_kind = admin_client.get(f"{INCIDENTS}?kind__exact=missed").content.decode()
    assert "hourly: not started" in by_kind and "nightly (tests" not in by_kind
    detail = admin_client.get(f"{INCIDENTS}{failing.pk}/change/").content.decode()
    assert reverse("admin:scheduler_jobrun_change", args=[run.pk]) in detail
    assert "service refused token ********" in detail and TOKEN not in detail


def test_operators_acknowledge_viewers_cannot(member, incidents):
    failing, _, _ = incidents
    data = {"action": "acknowledge", "_selected_action": [failing.pk]}
    viewer = member("Schedule viewers")
    assert viewer.get(INCIDENTS).status_code == 200
    viewer.post(INCIDENTS, data)
    failing.refresh_from_db()
    assert failing.acknowledged_at is None
    operator = member("Schedule operators")
    response = operator.post(INCIDENTS, data, follow=True)
    assert "1 incident(s) acknowledged; no reminders for them." in page_messages(response)
    failing.refresh_from_db()
    assert failing.acknowledged_at is not None and failing.acknowledged_by.username
    assert failing.state == "acknowledged"


def test_deliveries_are_read_only(admin_client, incidents):
    failing, _, _ = incidents
    AlertDelivery.objects.create(
        incident=failing, channel_name="chat", event="opened", payload={"title": "x"}
    )
    delivery = AlertDelivery.objects.get()
    assert admin_client.get("/admin/scheduler/alertdelivery/").status_code == 200
    page = admin_client.get(f"/admin/scheduler/alertdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.get("/admin/scheduler/alertdelivery/add/").status_code == 403


def test_a_schedules_page_sets_its_alert_overrides(admin_client, make_schedule):
    schedule = make_schedule("nightly")
    chat = AlertChannel.objects.create(name="chat", kind="webhook", url=SECRET_URL)
    url = reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    page = admin_client.get(url)
    html = page.content.decode()
    assert "Default (yes)" in html and "Empty: the default (300 s)." in html
    data = {
        "name": "nightly",
        "description": "",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "enabled": "on",
        "overlap_policy": "allow",
        "misfire_policy": "run_once",
        "catchup_window": "3600",
        "max_catchup_runs": "10",
        "jitter": "0",
        "queue": "",
        "param__ok_file": "/tmp/ok",
        "param__token": "",
    }
    data.update(
        {
            "alert_policy-TOTAL_FORMS": "1",
            "alert_policy-INITIAL_FORMS": "0",
            "alert_policy-0-on_failure": "unknown",
            "alert_policy-0-failure_threshold": "3",
            "alert_policy-0-on_recovery": "false",
            "alert_policy-0-on_missed": "true",
            "alert_policy-0-grace": "120",
            "alert_policy-0-max_runtime": "",
            "alert_policy-0-reminder_interval": "",
            "alert_policy-0-channels": [chat.pk],
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = AlertPolicy.objects.get(schedule=schedule)
    assert (saved.on_failure, saved.failure_threshold, saved.on_recovery, saved.grace) == (
        None,
        3,
        False,
        120,
    )
    assert list(saved.channels.all()) == [chat]
