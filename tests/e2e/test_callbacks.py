"""Completion callbacks end to end: a real ``celery worker`` runs an occurrence that an
application asked for with a callback URL and whose schedule names a callback channel; when
it has failed its last attempt, each receiver on 127.0.0.1 gets one signed POST (none for the
attempt that was retried), and the next occurrence's success reaches the channel only."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.utils import timezone

from jobs_catalog.models import JobDefinition
from scheduler.alerts.models import AlertChannel, AlertPolicy, CallbackDelivery
from scheduler.clock import SystemClock
from scheduler.runs.models import JobRun, RunRequest
from scheduler.runs.outbox import Outbox, Planned
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.support.processes import celery_worker, wait_for
from tests.support.receivers import WebhookReceiver
from tests.support.runs import attempts

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status
TOKEN = "tok-CallbackSecret-5150"
KEY = "e2e-callback-key"
CHANNEL_KEY = "e2e-channel-key"


def sent() -> int:
    return CallbackDelivery.objects.filter(status="sent").count()


def test_a_run_that_ends_calls_back_once_per_target_signed(platform, client_app, tmp_path):
    ok_file = tmp_path / "ok"
    schedule = save_schedule(
        Schedule(
            name="nightly export",
            job=JobDefinition.objects.get(name="tests.fails_until_file"),
            cron="0 0 1 1 *",
            params={"ok_file": str(ok_file), "token": TOKEN},
            queue=platform.queue,
            retry_max_attempts=2,
            retry_backoff_base=0.1,
        )
    )
    env = {
        **platform.env,
        "ALERTS_QUEUE": platform.queue,
        "CALLBACK_SIGNING_SECRET": KEY,
        "JOBS_HTTP_ALLOW": "127.0.0.1",
        "SCHEDULER_CLOCK": "system",
        "SITE_URL": "https://jobs.example.com",
    }
    outbox = Outbox(client_app, SystemClock())
    with WebhookReceiver(KEY) as app, WebhookReceiver(CHANNEL_KEY) as chat:
        channel = AlertChannel.objects.create(
            name="app hook", kind="webhook", url=chat.url, signing_secret=CHANNEL_KEY
        )
        AlertPolicy.objects.create(schedule=schedule, callback_channel=channel)
        with celery_worker(tmp_path, env, queues=platform.queue, concurrency=2):
            # As the trigger does: the run and its request committed, then published.
            with transaction.atomic():
                plan = Planned(
                    schedule.periodic_task, timezone.now(), Status.PENDING, JobRun.Trigger.API
                )
                outgoing = outbox.commit([plan], timezone.now())
                first = JobRun.objects.get(task_id=plan.task_id)
                RunRequest.objects.create(run=first, callback_url=app.url)
            outbox.publish(outgoing)

            wait_for(lambda: app.hooks and chat.hooks, 60, "a callback at each receiver")
            wait_for(lambda: sent() == 2, 10, "both deliveries recorded sent")
            runs = attempts(first)
            assert [r.status for r in runs] == [Status.RETRYING, Status.FAILED]

            ok_file.touch()
            [again] = outbox.enqueue(schedule, [timezone.now()], JobRun.Trigger.MANUAL)
            wait_for(lambda: len(chat.hooks) == 2, 60, "the channel told of the success")
            wait_for(lambda: sent() == 3, 10, "the third delivery recorded sent")

    assert not app.refused and not chat.refused  # every signature checked out
    [to_app] = app.hooks  # one for the occurrence, none for the retried attempt
    failed, succeeded = chat.hooks
    assert to_app.verified and failed.verified and succeeded.verified
    for hook in (to_app, failed):
        assert hook.headers["X-Jobs-Event"] == "run.failed"
        body = hook.json
        assert (body["run_id"], body["attempt_id"]) == (first.pk, runs[1].pk)
        assert (body["attempt"], body["status"], body["trigger"]) == (2, "failed", "retry")
        assert body["error_message"] == "service refused token ********"
        assert body["links"]["run"].startswith("https://jobs.example.com/admin/")
    assert to_app.headers["X-Jobs-Delivery"] != failed.headers["X-Jobs-Delivery"]
    assert succeeded.headers["X-Jobs-Event"] == "run.succeeded"
    assert succeeded.json["run_id"] == again.pk and succeeded.json["result"] == "'ok'"
    everything = json.dumps([h.body.decode() for h in (to_app, failed, succeeded)])
    assert TOKEN not in everything and KEY not in everything and CHANNEL_KEY not in everything
    assert sorted(CallbackDelivery.objects.values_list("target", "attempts")) == [
        ("channel", 1),
        ("channel", 1),
        ("url", 1),
    ]
