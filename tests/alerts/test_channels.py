"""Each channel against a real receiver on 127.0.0.1: the email through an SMTP server
(aiosmtpd), the webhook through an HTTP server that checks the signature itself, Sentry
through a server that takes envelopes the way Sentry does; and what the alert task records
when a delivery fails: the reason (no secret in it), retries with backoff, giving up."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sentry_sdk
from django.utils import timezone

from scheduler.alerts import checkins, tasks
from scheduler.alerts.channels.sentry import async_client
from scheduler.alerts.models import AlertChannel, AlertDelivery, Incident
from scheduler.alerts.tasks import send_delivery
from scheduler.runs import events as run_events
from scheduler.runs.models import JobRun
from tests.alerts.conftest import SIGNING, TOKEN, policy
from tests.scheduler.conftest import drain
from tests.support.receivers import WebhookReceiver, wait_until

pytestmark = pytest.mark.django_db
Status = JobRun.Status


def fail_once(make_schedule, make_run, channels, **policy_fields):
    schedule = make_schedule("nightly report")
    policy(schedule, channels, **policy_fields)
    run = make_run(schedule, Status.FAILED)
    run_events.finished(run.pk, Status.FAILED, run.schedule_id)
    return schedule, run


def send_all() -> list[tasks.Outcome]:
    ids = AlertDelivery.objects.filter(status="pending").order_by("id").values_list("pk", flat=True)
    return [send_delivery(pk) for pk in ids]


def test_email_reaches_the_smtp_server_saying_what_and_where(
    make_schedule, make_run, channels, smtp, settings
):
    settings.SITE_URL = "https://jobs.example.com"
    settings.ALERTS_EMAIL_FROM = "alerts@example.com"
    schedule, run = fail_once(make_schedule, make_run, [channels["email"]])
    assert [o.status for o in send_all()] == ["sent"]
    [mail] = smtp.mails
    assert mail.sender == "alerts@example.com"
    assert mail.recipients == ["oncall@example.com", "lead@example.com"]
    assert mail.subject == "[jobs.example.com] Failed: nightly report"
    body = mail.body
    assert "nightly report (tests.fails_until_file) failed." in body
    assert "ConnectionError: service refused token ********" in body
    assert "Cron:     0 3 * * * (Europe/Berlin)" in body
    assert f"https://jobs.example.com/admin/scheduler/jobrun/{run.pk}/change/" in body
    assert f"https://jobs.example.com/admin/scheduler/jobrun/?schedule={schedule.pk}" in body
    assert TOKEN not in mail.message.as_string()
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 1, "")


def test_the_webhook_is_signed_and_the_receiver_verifies_it(
    make_schedule, make_run, channels, webhook
):
    schedule, run = fail_once(make_schedule, make_run, [channels["webhook"]])
    assert [o.status for o in send_all()] == ["sent"]
    [hook] = webhook.hooks
    assert hook.verified and hook.path == "/hooks/T0KEN-in-the-path"
    assert hook.headers["X-Jobs-Event"] == "failed.opened"
    body = hook.json
    assert body["event"] == "opened" and body["kind"] == "failed"
    assert body["schedule"] == {
        "id": schedule.pk,
        "name": "nightly report",
        "job": "tests.fails_until_file",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
    }
    assert body["run"]["id"] == run.pk and body["run"]["status"] == "failed"
    assert body["links"]["run"].endswith(f"/admin/scheduler/jobrun/{run.pk}/change/")
    assert TOKEN not in hook.body.decode() and SIGNING not in hook.body.decode()


def test_a_tampered_body_fails_the_signature(webhook):
    from scheduler.alerts.channels.webhook import sign, verify

    body = b'{"a": 1}'
    header = sign(SIGNING, 1_800_000_000, body)
    assert verify(SIGNING, header, body, now=1_800_000_010)
    assert not verify(SIGNING, header, b'{"a": 2}', now=1_800_000_010)
    assert not verify("another key", header, body, now=1_800_000_010)
    assert not verify(SIGNING, header, body, now=1_800_001_000)  # too old: a replay


def test_the_slack_compatible_body(make_schedule, make_run, channels, webhook):
    AlertChannel.objects.filter(pk=channels["webhook"].pk).update(webhook_format="slack")
    channels["webhook"].refresh_from_db()
    fail_once(make_schedule, make_run, [channels["webhook"]])
    send_all()
    body = webhook.hooks[0].json
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("[localhost:8000] Failed: nightly report: ")
    section, context = body["blocks"]
    assert section["text"]["type"] == "mrkdwn"
    assert "```ConnectionError: service refused token ********```" in section["text"]["text"]
    assert "|The run>" in context["elements"][0]["text"]


def test_a_failed_delivery_is_retried_with_backoff_then_given_up(make_schedule, make_run, settings):
    settings.ALERTS_DELIVERY_ATTEMPTS = 3
    settings.ALERTS_DELIVERY_BACKOFF = 10
    with WebhookReceiver(SIGNING, fail_next=5) as failing:
        channel = AlertChannel.objects.create(
            name="flaky hook", kind="webhook", url=failing.url, signing_secret=SIGNING
        )
        fail_once(make_schedule, make_run, [channel])
        [pk] = AlertDelivery.objects.values_list("pk", flat=True)
        first = send_delivery(pk)
        assert first.status == "retry" and 0 <= first.retry_in <= 10
        delivery = AlertDelivery.objects.get()
        assert delivery.status == "pending" and delivery.attempts == 1
        assert delivery.last_error == "webhook at 127.0.0.1 answered HTTP 500"
        assert delivery.next_attempt_at is not None
        second = send_delivery(pk)
        assert second.status == "retry" and 0 <= second.retry_in <= 20
        assert send_delivery(pk).status == "failed"
        assert send_delivery(pk).status == "skipped"  # given up: never sent again
        assert len(failing.refused) == 3
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 3)


def test_the_reason_of_a_failure_keeps_the_channel_secret(make_schedule, make_run):
    secret_path = "/services/T0000/B0000/XXXXsecretXXXX"
    channel = AlertChannel.objects.create(
        name="gone", kind="webhook", url=f"http://127.0.0.1:9{secret_path}", timeout=2
    )
    fail_once(make_schedule, make_run, [channel])
    outcome = send_all()[0]
    delivery = AlertDelivery.objects.get()
    assert outcome.status == "retry" and delivery.last_error.startswith("webhook at 127.0.0.1:")
    assert "XXXXsecretXXXX" not in delivery.last_error


def test_a_slow_receiver_times_out(make_schedule, make_run):
    with WebhookReceiver(SIGNING, delay=2) as slow:
        channel = AlertChannel.objects.create(
            name="slow", kind="webhook", url=slow.url, timeout=0.3
        )
        fail_once(make_schedule, make_run, [channel])
        started = timezone.now()
        outcome = send_all()[0]
        assert timezone.now() - started < timedelta(seconds=1.5)
    assert outcome.status == "retry" and "Timeout" in outcome.reason


def test_one_delivery_is_never_sent_twice_at_once(make_schedule, make_run, channels, webhook):
    fail_once(make_schedule, make_run, [channels["webhook"]])
    delivery = AlertDelivery.objects.get()
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=30)  # another task is sending it
    )
    assert send_delivery(delivery.pk).status == "skipped"
    assert webhook.hooks == []


def test_the_sweep_queues_again_what_nobody_sent(
    make_schedule, make_run, channels, settings, queue_name
):
    settings.ALERTS_QUEUE = queue_name
    fail_once(make_schedule, make_run, [channels["webhook"]])
    delivery = AlertDelivery.objects.get()
    now = timezone.now()
    assert tasks.sweep(now) == 0  # just recorded: its task may be on the way
    AlertDelivery.objects.update(created_at=now - timedelta(minutes=5))
    assert tasks.sweep(now) == 1
    [(headers, _)] = drain(queue_name)
    assert headers["task"] == tasks.TASK_NAME and headers["argsrepr"] == f"({delivery.pk},)"
    assert tasks.sweep(now + timedelta(seconds=5)) == 0  # not again at once


def test_sentry_gets_a_failure_event_tagged_and_fingerprinted_per_schedule(
    make_schedule, make_run, channels, sentry
):
    schedule, run = fail_once(make_schedule, make_run, [channels["sentry"]])
    assert [o.status for o in send_all()] == ["sent"]
    [event] = sentry.events()
    assert event["level"] == "error"
    assert event["fingerprint"] == ["scheduled-job", "failed", str(schedule.pk)]
    assert event["tags"]["job"] == "tests.fails_until_file"
    assert event["tags"]["schedule"] == "nightly report"
    assert event["tags"]["schedule_id"] == str(schedule.pk)
    assert event["tags"]["run_id"] == str(run.pk)
    assert (
        "service refused token ********" in event["message"]["formatted"]
        if isinstance(event["message"], dict)
        else "service refused token ********" in event["message"]
    )
    assert TOKEN not in json.dumps(sentry.events())
    assert "sentry_key=publickey" in sentry.envelopes[0].auth


def test_sentry_that_refuses_is_a_failed_delivery(make_schedule, make_run, sentry):
    bad_key = sentry.dsn.replace("publickey", "wrongkey")
    channel = AlertChannel.objects.create(name="bad", kind="sentry", sentry_dsn=bad_key)
    fail_once(make_schedule, make_run, [channel])
    outcome = send_all()[0]
    assert outcome.status == "retry"
    assert outcome.reason.endswith("answered HTTP 403") and "wrongkey" not in outcome.reason


def test_sentry_crons_check_ins_carry_the_schedules_monitor_config(
    make_schedule, make_run, channels, sentry, django_capture_on_commit_callbacks
):
    schedule = make_schedule("Nightly Report!", cron="30 2 * * 1-5", timezone="Asia/Tokyo")
    policy(schedule, [channels["sentry"]], grace=90, max_runtime=600, failure_threshold=2)
    run = make_run(schedule, Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        run_events.started(run.pk, run.schedule_id, run.task_name)
    JobRun.objects.filter(pk=run.pk).update(
        status=Status.FAILED, finished_at=run.started_at + timedelta(seconds=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_events.finished(run.pk, Status.FAILED, run.schedule_id)
    async_client(sentry.dsn).flush(timeout=5)
    checks = wait_until(lambda: len(sentry.checkins()) >= 2 and sentry.checkins(), 5, "check-ins")
    assert [c["status"] for c in checks] == ["in_progress", "error"]
    assert {c["monitor_slug"] for c in checks} == {f"nightly-report-{schedule.pk}"}
    assert checks[0]["check_in_id"] == checks[1]["check_in_id"] == checkins.check_in_id(run)
    assert checks[1]["duration"] == 2.0
    assert checks[0]["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "30 2 * * 1-5"},
        "timezone": "Asia/Tokyo",
        "checkin_margin": 2,
        "max_runtime": 10,
        "failure_issue_threshold": 2,
        "recovery_threshold": 1,
    }


def test_without_a_maximum_runtime_sentry_gets_the_jobs_time_limit(make_schedule, channels):
    from scheduler.alerts import effective as config

    schedule = make_schedule(job="tests.sleep", params={})
    assert checkins.monitor_config(schedule, config.policy_for(schedule.pk))["max_runtime"] == 1


def test_failure_events_of_the_sdk_itself_get_the_runs_tags(make_schedule, make_run):
    from scheduler.alerts.sentry_scope import tag_run

    schedule = make_schedule()
    run = make_run(schedule, Status.RUNNING)
    with sentry_sdk.isolation_scope() as scope:
        tag_run(run.task_name, run.schedule_id, run.pk)
        assert scope._tags["schedule_id"] == str(schedule.pk)
        assert scope._tags["run_id"] == str(run.pk)
        assert scope._fingerprint == ["scheduled-job", "failed", str(schedule.pk)]


def test_incidents_record_their_deliveries(make_schedule, make_run, channels):
    fail_once(make_schedule, make_run, list(channels.values()))
    incident = Incident.objects.get()
    assert sorted(incident.deliveries.values_list("channel_name", flat=True)) == [
        "chat",
        "on-call mail",
        "sentry",
    ]
