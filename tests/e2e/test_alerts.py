"""Alerting end to end, with real ``celery worker`` and ``celery beat`` processes and real
receivers on 127.0.0.1 (an SMTP server, a webhook server checking the signature, a server
taking Sentry envelopes):

- a schedule whose job fails raises one incident and one message per channel after its
  retries; three more failures send nothing new; a success resolves it with a recovery
  message (and Sentry gets the events and check-ins);
- a killed beat produces a missed alert (from the workers' watchdog), and its return a
  recovery;
- a slow job produces a too-long alert while it is still running.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from jobs_catalog.models import JobDefinition
from scheduler.alerts.models import AlertChannel, AlertDelivery, AlertPolicy, Incident
from scheduler.beat.dispatch import Dispatcher
from scheduler.clock import FileClock, SystemClock
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import Outbox
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.support.processes import celery_beat, celery_worker, wait_for
from tests.support.receivers import SentryReceiver, SmtpReceiver, WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status
TOKEN = "tok-E2eSecret-4411"
SIGNING = "e2e-signing-key"


def schedule_of(platform, name: str, job: str, params: dict, cron: str = "0 0 1 1 *", **fields):
    definition = JobDefinition.objects.get(name=job)
    schedule = Schedule(
        name=name, job=definition, cron=cron, params=params, queue=platform.queue, **fields
    )
    return save_schedule(schedule)


def alert_env(platform, **extra: str) -> dict[str, str]:
    return {
        **platform.env,
        "ALERTS_QUEUE": platform.queue,
        "ALERTS_WATCHDOG_INTERVAL": "1",
        "SITE_URL": "https://jobs.example.com",
        **extra,
    }


def last_attempt(first: JobRun) -> JobRun:
    return JobRun.objects.filter(Q(pk=first.pk) | Q(occurrence=first)).order_by("-attempt")[0]


def ended(first: JobRun, statuses) -> bool:
    return last_attempt(first).status in statuses


def sent(**filters) -> int:
    return AlertDelivery.objects.filter(status="sent", **filters).count()


def test_a_failing_schedule_alerts_once_per_channel_and_once_more_when_it_recovers(
    platform, client_app, tmp_path
):
    ok_file = tmp_path / "ok"
    schedule = schedule_of(
        platform,
        "nightly report",
        "tests.fails_until_file",
        {"ok_file": str(ok_file), "token": TOKEN},
        retry_max_attempts=2,
        retry_backoff_base=0.1,
    )
    with SmtpReceiver() as smtp, WebhookReceiver(SIGNING) as hook, SentryReceiver() as sentry:
        channels = [
            AlertChannel.objects.create(name="mail", kind="email", recipients="oncall@example.com"),
            AlertChannel.objects.create(
                name="chat", kind="webhook", url=hook.url, signing_secret=SIGNING
            ),
            AlertChannel.objects.create(name="sentry", kind="sentry", sentry_dsn=sentry.dsn),
        ]
        AlertPolicy.objects.create(schedule=schedule).channels.set(channels)
        env = alert_env(
            platform,
            SCHEDULER_CLOCK="system",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp.port),
        )
        dispatcher = Dispatcher(client_app, SystemClock())

        def run_once(expect) -> JobRun:
            [first] = dispatcher.outbox.enqueue(schedule, [timezone.now()], JobRun.Trigger.MANUAL)
            wait_for(lambda: ended(first, expect), 40, f"the run to end {expect}")
            return first

        with celery_worker(tmp_path, env, queues=platform.queue, concurrency=2):
            first = run_once(JobRun.FAILURES)
            wait_for(lambda: sent() == 3, 30, "one alert per channel")
            wait_for(lambda: smtp.mails and hook.hooks and sentry.events(), 10, "the receivers")
            incident = Incident.objects.get()
            assert incident.count == 1 and incident.first_run_id == last_attempt(first).pk

            for _ in range(3):
                run_once(JobRun.FAILURES)
            wait_for(lambda: Incident.objects.get().count == 4, 20, "the failures counted")
            assert AlertDelivery.objects.count() == 3  # nothing new
            assert (len(smtp.mails), len(hook.hooks), len(sentry.events())) == (1, 1, 1)

            ok_file.touch()
            recovered = run_once([Status.SUCCEEDED])
            wait_for(lambda: sent(event="resolved") == 2, 30, "the recovery messages")
            wait_for(lambda: len(smtp.mails) == 2 and len(hook.hooks) == 2, 10, "receivers")
            wait_for(lambda: "ok" in [c["status"] for c in sentry.checkins()], 15, "check-in")

    incident.refresh_from_db()
    assert not incident.is_open and f"run #{recovered.pk}" in incident.resolution
    # Email: what and where, the masked error, a link to the run.
    failed_mail, recovery_mail = smtp.mails
    assert failed_mail.subject == "[jobs.example.com] Failed: nightly report"
    assert "service refused token ********" in failed_mail.body
    run_link = f"https://jobs.example.com/admin/scheduler/jobrun/{incident.first_run_id}/change/"
    assert run_link in failed_mail.body
    assert recovery_mail.subject == "[jobs.example.com] Recovered: nightly report"
    # Webhook: signed (the receiver checked), opened then resolved.
    assert all(h.verified for h in hook.hooks) and not hook.refused
    assert [h.json["event"] for h in hook.hooks] == ["opened", "resolved"]
    # Sentry: one event for the incident, grouped per schedule; check-ins for every run.
    [event] = sentry.events()
    assert event["fingerprint"] == ["scheduled-job", "failed", str(schedule.pk)]
    assert event["tags"]["schedule_id"] == str(schedule.pk)
    statuses = [c["status"] for c in sentry.checkins()]
    assert statuses.count("error") == 4 and statuses.count("ok") == 1
    assert statuses.count("in_progress") >= 5
    config = sentry.checkins()[0]["monitor_config"]
    assert config["schedule"] == {"type": "crontab", "value": "0 0 1 1 *"}
    # No secret anywhere.
    everything = json.dumps(
        [m.message.as_string() for m in smtp.mails]
        + [h.body.decode() for h in hook.hooks]
        + [json.dumps(e.items, default=str) for e in sentry.envelopes]
    )
    assert TOKEN not in everything and SIGNING not in everything


START = datetime(2026, 6, 1, 12, 0, 57, tzinfo=UTC)


def minute(m: int, s: int = 0) -> datetime:
    return datetime(2026, 6, 1, 12, m, s, tzinfo=UTC)


def test_a_killed_beat_produces_a_missed_alert_and_its_return_a_recovery(platform, tmp_path):
    platform.set_time(minute(0))  # START once worker and beat are up, however long that took
    marker = tmp_path / "ran.txt"
    schedule = schedule_of(
        platform, "every minute", "tests.touch_file", {"path": str(marker)}, "* * * * *"
    )
    AlertPolicy.objects.create(schedule=schedule, grace=5)
    with WebhookReceiver(SIGNING) as hook:
        AlertChannel.objects.create(
            name="chat", kind="webhook", url=hook.url, signing_secret=SIGNING, is_default=True
        )
        env = alert_env(platform)
        with celery_worker(tmp_path, env, queues=platform.queue):
            with celery_beat(tmp_path, env, name="doomed") as doomed:
                platform.set_time(START)
                wait_for(
                    lambda: JobRun.objects.filter(status=Status.SUCCEEDED).exists(), 30, "12:01"
                )
                os.killpg(doomed.popen.pid, signal.SIGKILL)
                doomed.popen.wait(10)
            platform.set_time(minute(2, 10))  # 12:02 is 10 s overdue; the grace is 5 s
            wait_for(lambda: hook.hooks, 20, "the missed alert")
            [missed] = hook.hooks
            assert missed.verified and missed.json["kind"] == "missed"
            assert missed.json["event"] == "opened"
            assert "is beat running?" in missed.json["summary"]
            with celery_beat(tmp_path, env, name="back"):
                wait_for(lambda: len(hook.hooks) >= 2, 30, "the recovery")
    assert [h.json["event"] for h in hook.hooks] == ["opened", "resolved"]
    assert hook.hooks[1].json["title"] == "Recovered: every minute"
    incident = Incident.objects.get()
    assert incident.schedule == schedule and not incident.is_open


def test_a_slow_job_alerts_while_it_still_runs(platform, client_app, tmp_path):
    schedule = schedule_of(platform, "slow", "tests.sleep", {"seconds": 4})
    AlertPolicy.objects.create(schedule=schedule, max_runtime=1)
    with WebhookReceiver(SIGNING) as hook:
        AlertChannel.objects.create(
            name="chat", kind="webhook", url=hook.url, signing_secret=SIGNING, is_default=True
        )
        env = alert_env(platform, SCHEDULER_CLOCK="system")
        with celery_worker(tmp_path, env, queues=platform.queue, concurrency=2):
            [run] = Outbox(client_app, SystemClock()).enqueue(
                schedule, [timezone.now()], JobRun.Trigger.MANUAL
            )
            wait_for(lambda: hook.hooks, 20, "the too-long alert")
            still = JobRun.objects.get(pk=run.pk)
            assert still.status == Status.RUNNING  # told while it runs
            [alert] = hook.hooks
            assert alert.json["kind"] == "too_long" and alert.json["event"] == "opened"
            assert alert.json["title"] == "Running too long: slow"
            wait_for(lambda: len(hook.hooks) >= 2, 20, "the end of the long run")
    assert [(h.json["event"], h.json["kind"]) for h in hook.hooks] == [
        ("opened", "too_long"),
        ("resolved", "too_long"),
    ]
    assert "The long run ended: succeeded" in hook.hooks[1].json["summary"]
    assert JobRun.objects.get(pk=run.pk).status == Status.SUCCEEDED


def test_a_channel_added_after_the_worker_warmed_up_gets_the_very_next_alert(
    platform, client_app, tmp_path
):
    """A worker that has already run something (its configuration read) alerts to a channel
    created a moment later, and follows a channel disabled and another added between two
    events of one incident: each announcement is one delivery row per channel that applied
    then, and the receivers got exactly those."""
    ok_file = tmp_path / "ok"
    ok_file.touch()
    schedule = schedule_of(
        platform, "flaky", "tests.fails_until_file", {"ok_file": str(ok_file), "token": TOKEN}
    )
    clock = FileClock(platform.clock_file)
    dispatcher = Dispatcher(client_app, clock)

    def run_once(expect) -> JobRun:
        [first] = dispatcher.outbox.enqueue(schedule, [clock.now()], JobRun.Trigger.MANUAL)
        wait_for(lambda: ended(first, expect), 40, f"the run to end {expect}")
        return first

    def default_hook(name: str, receiver: WebhookReceiver) -> AlertChannel:
        return AlertChannel.objects.create(
            name=name, kind="webhook", url=receiver.url, signing_secret=SIGNING, is_default=True
        )

    def delivered(channel: AlertChannel) -> list[str]:
        rows = AlertDelivery.objects.filter(channel=channel, status="sent").order_by("id")
        return [d.event for d in rows]

    with WebhookReceiver(SIGNING) as first_hook, WebhookReceiver(SIGNING) as second_hook:
        with celery_worker(tmp_path, alert_env(platform), queues=platform.queue):
            run_once([Status.SUCCEEDED])  # the worker has now read the alert configuration
            ok_file.unlink()
            first = default_hook("first", first_hook)
            AlertPolicy.objects.create(schedule=schedule, reminder_interval=60)

            run_once(JobRun.FAILURES)
            wait_for(lambda: delivered(first) == ["opened"], 30, "the first alert sent")
            wait_for(lambda: first_hook.hooks, 10, "the first receiver")
            incident = Incident.objects.get()
            assert incident.last_notified_at is not None

            # Between two events: the first channel disabled, another added.
            AlertChannel.objects.filter(pk=first.pk).update(enabled=False)
            second = default_hook("second", second_hook)
            platform.set_time(clock.now() + timedelta(minutes=2))  # past the reminder interval
            run_once(JobRun.FAILURES)
            wait_for(lambda: delivered(second) == ["reminder"], 30, "the reminder sent")

            ok_file.touch()
            run_once([Status.SUCCEEDED])
            wait_for(lambda: delivered(second) == ["reminder", "resolved"], 30, "the recovery")
            wait_for(lambda: len(second_hook.hooks) == 2, 10, "the second receiver")

    assert [h.json["event"] for h in first_hook.hooks] == ["opened"]
    assert [h.json["event"] for h in second_hook.hooks] == ["reminder", "resolved"]
    assert all(h.verified for h in first_hook.hooks + second_hook.hooks)
    assert AlertDelivery.objects.filter(channel=first).count() == 1  # nothing after it was off
    incident.refresh_from_db()
    assert incident.count == 2 and not incident.is_open
