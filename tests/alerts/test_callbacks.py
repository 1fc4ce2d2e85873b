"""Completion callbacks against real receivers on 127.0.0.1 (threaded HTTP servers that check
the signature themselves) and the real database: what is recorded when a run ends, what the
POST says and how it is signed, retries with backoff (time handed in, never slept), refused
destinations, redirects, a schedule's callback channel, the cost of a run without one, and
the admin's record."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from celery.exceptions import Retry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from prometheus_client import REGISTRY

from jobs_catalog.secrets import seal
from scheduler.alerts import effective as alert_config
from scheduler.alerts import tasks as alert_tasks
from scheduler.alerts.callbacks import hooks as callback_hooks
from scheduler.alerts.callbacks import tasks as callback_tasks
from scheduler.alerts.callbacks.tasks import send_callback
from scheduler.alerts.channels.webhook import verify
from scheduler.alerts.deliveries import Outcome, task_result
from scheduler.alerts.models import AlertChannel, AlertPolicy, CallbackDelivery
from scheduler.runs import actions, recording
from scheduler.runs import events as run_events
from scheduler.runs.callback_urls import UNSIGNED_PROBLEM, check_callback_url
from scheduler.runs.models import JobRun, RunRequest
from tests.alerts.conftest import SIGNING, TOKEN, policy
from tests.scheduler.conftest import ManualClock, drain
from tests.support.receivers import Redirector, WebhookReceiver, free_port

pytestmark = pytest.mark.django_db
Status = JobRun.Status
#: The platform's key for callbacks to URLs (the receiver checks it).
KEY = "cb-signing-key-5e1f"
T0 = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def callback_settings(settings):
    settings.CALLBACK_SIGNING_SECRET = KEY
    settings.SITE_URL = "https://jobs.example.com"
    return settings


@pytest.fixture
def clock(monkeypatch) -> ManualClock:
    clock = ManualClock(T0)
    monkeypatch.setattr("scheduler.alerts.callbacks.hooks.get_clock", lambda: clock)
    return clock


@pytest.fixture
def receiver():
    with WebhookReceiver(KEY) as server:
        yield server


def api_run(url: str, status: str = Status.FAILED, **fields) -> JobRun:
    """A run an application triggered (no schedule) asking for a callback at ``url``; its
    job quotes its secret parameter in the error, and its request keeps it sealed."""
    scheduled = fields.pop("scheduled_for", T0 - timedelta(minutes=5))
    if status in JobRun.FINISHED:
        fields.setdefault("started_at", scheduled + timedelta(seconds=1))
        fields.setdefault("finished_at", scheduled + timedelta(seconds=3))
        fields.setdefault("duration", 2.0)
    if status in JobRun.FAILURES or status == Status.RETRYING:
        fields.setdefault("error_type", "ConnectionError")
        fields.setdefault("error_message", f"service refused token {TOKEN}")
    fields.setdefault("trigger", JobRun.Trigger.API)
    run = JobRun.objects.create(
        task_name="tests.fails_until_file", scheduled_for=scheduled, status=status, **fields
    )
    if fields.get("occurrence") is None:
        RunRequest.objects.create(
            run=run, callback_url=url, kwargs={"ok_file": "/nonexistent", "token": seal(TOKEN)}
        )
    return run


def end(run: JobRun, **facts) -> None:
    """Announce the end of ``run`` as a worker does (facts: what its start read)."""
    run_events.finished(run.pk, run.status, run.schedule_id, facts=facts or None)


def send_all(now: datetime | None = None) -> list[str]:
    ids = CallbackDelivery.objects.filter(status="pending").order_by("id").values_list("pk")
    return [send_callback(pk, now=now).status for (pk,) in ids]


# --- the URL an application named -------------------------------------------------------
def test_a_url_callback_is_delivered_once_signed_and_saying_what_the_run_did(receiver, clock):
    run = api_run(receiver.url)
    end(run)
    end(run)  # announced twice (a worker retrying its end through an outage): recorded once
    delivery = CallbackDelivery.objects.get()
    assert (delivery.run_id, delivery.occurrence_id, delivery.target) == (run.pk, run.pk, "url")
    assert (delivery.run_status, delivery.created_at) == ("failed", T0)
    assert delivery.payload == {}  # built at the first attempt
    assert send_all() == ["sent"]
    assert send_callback(delivery.pk).status == "skipped"  # never sent twice

    [hook] = receiver.hooks
    assert hook.verified and not receiver.refused  # the receiver's own HMAC check
    assert verify(KEY, hook.headers["X-Jobs-Signature"], hook.body, now=time.time())
    assert not verify(KEY, hook.headers["X-Jobs-Signature"], hook.body + b" ", now=time.time())
    assert hook.headers["X-Jobs-Event"] == "run.failed"
    assert hook.headers["X-Jobs-Delivery"] == str(delivery.pk)
    assert hook.headers["Content-Type"] == "application/json"
    body = hook.json
    assert body == {
        "event": "run.failed",
        "delivery_id": delivery.pk,
        "run_id": run.pk,
        "attempt_id": run.pk,
        "attempt": 1,
        "max_attempts": 1,
        "job": "tests.fails_until_file",
        "schedule": None,
        "trigger": "api",
        "status": "failed",
        "scheduled_for": "2026-06-01T11:55:30+00:00",
        "started_at": "2026-06-01T11:55:31+00:00",
        "finished_at": "2026-06-01T11:55:33+00:00",
        "duration": 2.0,
        "result": None,
        "error_type": "ConnectionError",
        "error_message": "service refused token ********",
        "note": None,
        "links": {
            "run": f"https://jobs.example.com/admin/scheduler/jobrun/{run.pk}/change/",
            "api": f"https://jobs.example.com/api/runs/{run.pk}",
        },
        "site": "jobs.example.com",
    }
    assert TOKEN not in hook.body.decode() and KEY not in hook.body.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("sent", 1, 200)
    assert delivery.last_error == "" and delivery.sent_at is not None
    assert delivery.payload == body  # the record shows what went out


def test_a_receiver_that_fails_then_answers_gets_it_again_after_a_backoff(
    receiver, clock, callback_settings
):
    callback_settings.CALLBACK_DELIVERY_BACKOFF = 10
    callback_settings.CALLBACK_DELIVERY_BACKOFF_CAP = 100
    receiver.fail_next = 1
    end(api_run(receiver.url, Status.SUCCEEDED, result="{'rows': 3}"))
    delivery = CallbackDelivery.objects.get()

    first = send_callback(delivery.pk, now=T0)
    assert first.status == "retry" and 0 <= first.retry_in <= 10
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("pending", 1, 500)
    assert delivery.last_error == "callback to 127.0.0.1 answered HTTP 500"
    assert delivery.next_attempt_at == T0 + timedelta(seconds=first.retry_in)

    later = T0 + timedelta(seconds=first.retry_in)
    assert send_callback(delivery.pk, now=later).status == "sent"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("sent", 2, 200)
    assert (delivery.last_error, delivery.sent_at, delivery.next_attempt_at) == ("", later, None)
    [refused], [taken] = receiver.refused, receiver.hooks
    # The same delivery twice: same id for the receiver to drop a repeat, same body.
    assert refused.headers["X-Jobs-Delivery"] == taken.headers["X-Jobs-Delivery"]
    assert refused.json == taken.json and taken.json["result"] == "{'rows': 3}"


def test_a_receiver_that_is_down_is_tried_until_the_attempts_are_spent(clock, callback_settings):
    callback_settings.CALLBACK_DELIVERY_ATTEMPTS = 3
    secret_path = "/hooks/PathToken-77aa?sig=QueryToken-88bb"
    end(api_run(f"http://127.0.0.1:{free_port()}{secret_path}"))
    delivery = CallbackDelivery.objects.get()
    outcomes = [send_callback(delivery.pk, now=T0 + timedelta(minutes=i)) for i in range(3)]
    assert [o.status for o in outcomes] == ["retry", "retry", "failed"]
    # Backoff doubles: each delay is drawn under a ceiling twice the last one's.
    assert outcomes[0].retry_in <= 10 and outcomes[1].retry_in <= 20
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 3, None)
    assert delivery.last_error.startswith("callback to 127.0.0.1: NewConnectionError")
    assert "Connection refused" in delivery.last_error
    assert "PathToken" not in delivery.last_error and "QueryToken" not in delivery.last_error
    assert send_callback(delivery.pk).status == "skipped"  # given up: never again


def test_a_denied_destination_fails_at_once_with_the_reason(receiver, clock, callback_settings):
    callback_settings.JOBS_HTTP_DENY = ["127.0.0.1"]
    end(api_run(receiver.url))
    assert send_all() == ["failed"]
    delivery = CallbackDelivery.objects.get()
    assert delivery.attempts == 1 and delivery.next_attempt_at is None  # no retry storm
    assert "127.0.0.1 is refused by JOBS_HTTP_DENY" in delivery.last_error
    assert receiver.hooks == [] and receiver.refused == []


def test_the_policy_is_held_against_the_address_a_name_resolves_to(
    receiver, clock, callback_settings
):
    callback_settings.JOBS_HTTP_ALLOW = []  # loopback refused again
    url = receiver.url.replace("127.0.0.1", "localhost")
    assert check_callback_url(url) is None  # the name alone shows nothing wrong
    end(api_run(url))
    assert send_all() == ["failed"]
    delivery = CallbackDelivery.objects.get()
    assert delivery.attempts == 1
    assert "is a loopback address, refused by default" in delivery.last_error
    assert receiver.hooks == [] and receiver.refused == []


def test_a_redirect_is_not_followed(receiver, clock):
    with Redirector(receiver.url) as moved:
        end(api_run(moved.url))
        assert send_all() == ["failed"]
        assert moved.posts == 1
    assert receiver.hooks == [] and receiver.refused == []
    delivery = CallbackDelivery.objects.get()
    assert (delivery.attempts, delivery.response_status) == (1, 302)
    assert (
        delivery.last_error == "callback to 127.0.0.1 answered HTTP 302, a redirect: not followed"
    )


def test_a_receiver_that_says_no_is_not_asked_again(clock):
    class Gone(WebhookReceiver):
        def handle(self, path, headers, body):
            return 410, b"{}"

    with Gone(KEY) as gone:
        end(api_run(gone.url))
        assert send_all() == ["failed"]
    delivery = CallbackDelivery.objects.get()
    assert (delivery.attempts, delivery.response_status) == (1, 410)
    assert delivery.last_error == "callback to 127.0.0.1 answered HTTP 410"


def test_without_a_signing_key_nothing_is_sent_unsigned(receiver, clock, callback_settings):
    end(api_run(receiver.url))
    callback_settings.CALLBACK_SIGNING_SECRET = ""  # removed after the run was triggered
    assert send_all() == ["failed"]
    assert "CALLBACK_SIGNING_SECRET is not set" in CallbackDelivery.objects.get().last_error
    assert receiver.hooks == [] and receiver.refused == []


def test_a_run_pruned_before_its_callback_is_a_failed_delivery(receiver, clock):
    run = api_run(receiver.url)
    end(run)
    JobRun.objects.filter(pk=run.pk).delete()
    assert send_all() == ["failed"]
    assert "no longer exists" in CallbackDelivery.objects.get().last_error


# --- when: the end of the occurrence -----------------------------------------------------
def test_a_retrying_attempt_sends_nothing_until_the_occurrence_ends(receiver, clock):
    first = api_run(receiver.url, Status.RETRYING, max_attempts=2)
    end(first)
    assert not CallbackDelivery.objects.exists()
    second = api_run(
        receiver.url, Status.FAILED, occurrence=first, attempt=2, max_attempts=2, trigger="retry"
    )
    end(second)
    delivery = CallbackDelivery.objects.get()
    assert (delivery.run_id, delivery.occurrence_id) == (second.pk, first.pk)
    assert send_all() == ["sent"]
    [hook] = receiver.hooks
    assert hook.json["run_id"] == first.pk and hook.json["attempt_id"] == second.pk
    assert (hook.json["attempt"], hook.json["max_attempts"]) == (2, 2)
    assert hook.headers["X-Jobs-Event"] == "run.failed"


@pytest.mark.parametrize("status", [Status.TIMED_OUT, Status.LOST, Status.SKIPPED])
def test_every_other_final_status_ends_the_occurrence(receiver, clock, status):
    end(api_run(receiver.url, status))
    assert send_all() == ["sent"]
    assert receiver.hooks[0].headers["X-Jobs-Event"] == f"run.{status}"


def test_a_cancelled_run_calls_back(receiver, clock, django_capture_on_commit_callbacks):
    run = api_run(receiver.url, Status.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        actions.cancel_run(run.pk)
    delivery = CallbackDelivery.objects.get()
    assert delivery.run_status == "cancelled"
    assert send_all() == ["sent"]
    [hook] = receiver.hooks
    assert hook.headers["X-Jobs-Event"] == "run.cancelled"
    assert hook.json["status"] == "cancelled" and hook.json["note"].startswith("Cancelled by")


def test_a_run_without_a_callback_records_nothing(make_schedule, make_run, clock):
    run = make_run(make_schedule(), Status.FAILED)
    end(run)
    end(run, callback_url=None, callback_channel=None)
    assert not CallbackDelivery.objects.exists()


def test_the_start_reads_the_callback_and_a_run_without_one_ends_without_a_query(
    make_schedule, make_run, receiver, clock
):
    alert_config.cached_channels()  # warm alerting's per-process cache, as a worker's is
    plain = make_run(make_schedule(), Status.QUEUED)
    asked = api_run(receiver.url, Status.QUEUED)
    started = {
        run.pk: recording.claim(
            run.pk,
            now=T0,
            host="w1@test-host",
            pid=1,
            queue="q",
            params={},
            run_max_attempts=None,
            job_max_attempts=1,
            check_overlap=False,
        )
        for run in (plain, asked)
    }
    # The worker's start statement answered it: no callback for the first, a URL for the other.
    assert started[plain.pk].facts["callback_url"] is None
    assert started[plain.pk].facts["callback_channel"] is None
    assert started[asked.pk].facts["callback_url"] == receiver.url
    JobRun.objects.filter(pk__in=started).update(status=Status.SUCCEEDED)

    claimed = started[plain.pk]
    with CaptureQueriesContext(connection) as queries:
        run_events.finished(claimed.id, Status.SUCCEEDED, claimed.schedule_id, facts=claimed.facts)
    assert len(queries) == 0, [q["sql"] for q in queries]
    # Told nothing at the start (the reaper, a cancel), it asks once.
    with CaptureQueriesContext(connection) as asked_once:
        callback_hooks.on_run_finished(
            None, run=plain, run_id=plain.pk, schedule_id=plain.schedule_id, status="succeeded"
        )
    assert len(asked_once) == 1 and "scheduler_runrequest" in asked_once[0]["sql"]

    claimed = started[asked.pk]
    run_events.finished(claimed.id, Status.SUCCEEDED, claimed.schedule_id, facts=claimed.facts)
    assert CallbackDelivery.objects.get().run_id == asked.pk
    assert send_all() == ["sent"] and receiver.hooks[0].json["status"] == "succeeded"


# --- a schedule's callback channel ---------------------------------------------------------
def test_a_schedule_callback_channel_gets_its_runs_ends_signed_with_its_secret(
    make_schedule, make_run, clock
):
    with WebhookReceiver(SIGNING) as hook_server:
        channel = AlertChannel.objects.create(
            name="app hook", kind="webhook", url=hook_server.url, signing_secret=SIGNING
        )
        schedule = make_schedule("nightly report")
        policy(schedule, callback_channel=channel)
        run = make_run(schedule, Status.SUCCEEDED, result=f"sent with {TOKEN}")
        end(run)
        delivery = CallbackDelivery.objects.get()
        assert (delivery.target, delivery.channel_id) == ("channel", channel.pk)
        assert send_all() == ["sent"]
    [hook] = hook_server.hooks
    assert hook.verified  # with the channel's secret
    body = hook.json
    assert body["schedule"] == {"id": schedule.pk, "name": "nightly report"}
    assert body["status"] == "succeeded" and body["result"] == "sent with ********"
    assert TOKEN not in hook.body.decode() and SIGNING not in hook.body.decode()
    delivery.refresh_from_db()
    assert delivery.channel_name == "app hook" and delivery.destination == "app hook"


def test_a_slack_channel_gets_a_slack_message(make_schedule, make_run, clock):
    with WebhookReceiver(SIGNING) as hook_server:
        channel = AlertChannel.objects.create(
            name="chat",
            kind="webhook",
            url=hook_server.url,
            signing_secret=SIGNING,
            webhook_format=AlertChannel.Format.SLACK,
        )
        schedule = make_schedule("nightly report")
        policy(schedule, callback_channel=channel)
        end(make_run(schedule, Status.FAILED))
        assert send_all() == ["sent"]
    [hook] = hook_server.hooks
    assert hook.json["text"].startswith("[jobs.example.com] Failed: nightly report")
    assert "service refused token ********" in hook.json["blocks"][0]["text"]["text"]
    assert TOKEN not in hook.body.decode()


def test_a_run_with_both_a_url_and_a_channel_calls_both_once(make_schedule, receiver, clock):
    with WebhookReceiver(SIGNING) as hook_server:
        channel = AlertChannel.objects.create(
            name="app hook", kind="webhook", url=hook_server.url, signing_secret=SIGNING
        )
        schedule = make_schedule()
        policy(schedule, callback_channel=channel)
        run = api_run(receiver.url, Status.SUCCEEDED, schedule=schedule)
        end(run)
        end(run)
        assert sorted(CallbackDelivery.objects.values_list("target", flat=True)) == [
            "channel",
            "url",
        ]
        assert send_all() == ["sent", "sent"]
        assert len(hook_server.hooks) == 1 and len(receiver.hooks) == 1


def test_a_disabled_channel_fails_its_delivery(make_schedule, make_run, webhook, clock):
    channel = AlertChannel.objects.create(name="off", kind="webhook", url=webhook.url)
    policy(schedule := make_schedule(), callback_channel=channel)
    end(make_run(schedule, Status.SUCCEEDED))
    AlertChannel.objects.filter(pk=channel.pk).update(enabled=False)
    assert send_all() == ["failed"]
    assert (
        CallbackDelivery.objects.get().last_error == "the callback channel was deleted or disabled"
    )
    assert webhook.hooks == []


# --- the sweep -------------------------------------------------------------------------------
def test_the_sweep_queues_again_callbacks_nobody_sent(receiver, clock, settings, queue_name):
    settings.ALERTS_QUEUE = queue_name
    end(api_run(receiver.url))
    delivery = CallbackDelivery.objects.get()
    assert callback_tasks.sweep(T0) == 0  # just recorded: its task may be on the way
    assert callback_tasks.sweep(T0 + timedelta(minutes=5)) == 1
    [(headers, _)] = drain(queue_name)
    assert headers["task"] == callback_tasks.TASK_NAME
    assert headers["argsrepr"] == f"({delivery.pk},)"
    assert callback_tasks.sweep(T0 + timedelta(minutes=5, seconds=5)) == 0  # not again at once


# --- the URL check offered to the trigger ---------------------------------------------------
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://app.example.com/hooks/run-done?t=abc", None),
        ("http://127.0.0.1:8080/done", None),  # the tests allow 127.0.0.1
        ("ftp://app.example.com/x", "must be an http:// or https:// URL"),
        ("https:///path", "must name a host"),
        ("https://user:pw@app.example.com/x", "must not carry credentials"),
        ("https://app.example.com/a b", "must not contain spaces or control characters"),
        ("http://10.0.0.5/x", "10.0.0.5 is a private address, refused by default"),
        ("http://169.254.169.254/latest", "is a cloud metadata address"),
        ("https://app.example.com/" + "x" * 2000, "must be at most 2000 characters"),
    ],
)
def test_check_callback_url(url, problem):
    found = check_callback_url(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert "user:pw" not in found  # never quotes the URL


def test_check_callback_url_without_a_signing_key(callback_settings):
    callback_settings.CALLBACK_SIGNING_SECRET = ""
    assert check_callback_url("https://app.example.com/done") == UNSIGNED_PROBLEM


# --- the admin ---------------------------------------------------------------------------
def test_the_run_page_lists_its_callbacks(admin_client, receiver, clock):
    run = api_run(receiver.url)
    end(run)
    send_all()
    page = admin_client.get(reverse("admin:scheduler_jobrun_change", args=[run.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "Completion callbacks" in html
    assert "127.0.0.1/…" in html and "HTTP 200" in html and "1 attempt(s)" in html
    assert "T0KEN-in-the-path" not in html  # the URL's path is not shown
    listing = admin_client.get(reverse("admin:scheduler_callbackdelivery_changelist"))
    assert listing.status_code == 200 and "127.0.0.1/…" in listing.content.decode()
    delivery = CallbackDelivery.objects.get()
    detail = admin_client.get(
        reverse("admin:scheduler_callbackdelivery_change", args=[delivery.pk])
    )
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert "service refused token ********" in detail.content.decode()
    assert TOKEN not in detail.content.decode() and "T0KEN-in-the-path" not in html
    found = admin_client.get(
        reverse("admin:scheduler_callbackdelivery_changelist"), {"q": str(run.pk)}
    )
    assert "127.0.0.1/…" in found.content.decode()


def schedule_form(schedule, **policy_fields) -> dict:
    data = {
        "name": schedule.name,
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
        "alert_policy-TOTAL_FORMS": "1",
        "alert_policy-INITIAL_FORMS": "0",
        "alert_policy-0-on_failure": "unknown",
        "alert_policy-0-on_recovery": "unknown",
        "alert_policy-0-on_missed": "unknown",
    }
    data.update({f"alert_policy-0-{k}": v for k, v in policy_fields.items()})
    return data


def test_a_schedules_page_picks_a_webhook_channel_as_its_callback(admin_client, make_schedule):
    schedule = make_schedule("nightly")
    hook = AlertChannel.objects.create(name="app hook", kind="webhook", url="https://x.test/h")
    mail = AlertChannel.objects.create(name="mail", kind="email", recipients="a@example.com")
    url = reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    html = admin_client.get(url).content.decode()
    assert "completion callback" in html.lower() and "app hook" in html

    refused = admin_client.post(url, schedule_form(schedule, callback_channel=mail.pk))
    assert refused.status_code == 200
    assert "only a webhook takes completion callbacks" in refused.content.decode()
    assert not AlertPolicy.objects.filter(schedule=schedule).exists()  # nothing changed

    saved = admin_client.post(url, schedule_form(schedule, callback_channel=hook.pk))
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert AlertPolicy.objects.get(schedule=schedule).callback_channel == hook


def test_callbacks_are_counted(receiver, clock):
    def sent() -> float:
        return (
            REGISTRY.get_sample_value(
                "jobs_callback_deliveries_total", {"target": "url", "outcome": "sent"}
            )
            or 0.0
        )

    before = sent()
    end(api_run(receiver.url))
    send_all()
    assert sent() == before + 1


@pytest.mark.parametrize("task", ["callback", "alert"])
def test_a_delivery_retries_past_celerys_default_limit(task):
    """The record counts the attempts; Celery's own limit (3) never cuts a retry short."""
    deliver = callback_tasks.deliver_callback if task == "callback" else alert_tasks.deliver
    deliver.push_request(id="t-1", retries=6, is_eager=True, called_directly=False)
    try:
        with pytest.raises(Retry):
            task_result(deliver, Outcome("retry", retry_in=1.0))
    finally:
        deliver.pop_request()
