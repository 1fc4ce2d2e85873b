"""Fixtures of the alerting tests: schedules of the test jobs, runs in given states, channels
pointing at real receivers on 127.0.0.1, and a clock the hooks read."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs_catalog.models import JobDefinition
from scheduler.alerts import effective as config
from scheduler.alerts.models import AlertChannel, AlertPolicy
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.scheduler.conftest import ManualClock, queue_name  # noqa: F401  (fixture)
from tests.support.receivers import SentryReceiver, SmtpReceiver, WebhookReceiver

#: The secret parameter value of the flaky job; no alert may contain it.
TOKEN = "tok-AlertSecret-9f3c"
SIGNING = "whsec-test-signing-key"
_times = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_config():
    config.clear()
    yield
    config.clear()


@pytest.fixture
def clock(monkeypatch) -> ManualClock:
    """The clock the hooks read (the watchdog tests pass it in)."""
    clock = ManualClock(datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC))
    monkeypatch.setattr("scheduler.alerts.hooks.get_clock", lambda: clock)
    return clock


@pytest.fixture
def make_schedule():
    def make(name: str = "nightly", job: str = "tests.fails_until_file", **fields: Any) -> Schedule:
        params = fields.pop("params", {"ok_file": "/nonexistent/ok", "token": TOKEN})
        schedule = Schedule(
            name=name,
            job=JobDefinition.objects.get(name=job),
            cron=fields.pop("cron", "0 3 * * *"),
            timezone=fields.pop("timezone", "Europe/Berlin"),
            params=params,
            **fields,
        )
        return save_schedule(schedule)

    return make


@pytest.fixture
def make_run():
    def make(schedule: Schedule | None, status: str, **fields: Any) -> JobRun:
        scheduled = fields.pop(
            "scheduled_for", timezone.now() - timedelta(hours=1) + timedelta(seconds=next(_times))
        )
        if status in (JobRun.Status.RUNNING, *JobRun.FINISHED):
            fields.setdefault("started_at", scheduled)
        if status in JobRun.FINISHED:
            fields.setdefault("finished_at", scheduled + timedelta(seconds=2))
        if status in JobRun.FAILURES:
            fields.setdefault("error_type", "ConnectionError")
            fields.setdefault("error_message", f"service refused token {TOKEN}")
        return JobRun.objects.create(
            schedule=schedule,
            periodic_task=schedule.periodic_task if schedule else None,
            task_name=schedule.job.name if schedule else "some.task",
            scheduled_for=scheduled,
            status=status,
            **fields,
        )

    return make


def policy(schedule: Schedule, channels: list[AlertChannel] = (), **fields: Any) -> AlertPolicy:
    row = AlertPolicy.objects.create(schedule=schedule, **fields)
    row.channels.set(channels)
    return row


@pytest.fixture
def smtp(settings):
    with SmtpReceiver() as receiver:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", receiver.port
        yield receiver


@pytest.fixture
def webhook():
    with WebhookReceiver(SIGNING) as receiver:
        yield receiver


@pytest.fixture
def sentry():
    with SentryReceiver() as receiver:
        yield receiver


@pytest.fixture
def channels(smtp, webhook, sentry) -> dict[str, AlertChannel]:
    """One channel of each kind, at the receivers."""
    return {
        "email": AlertChannel.objects.create(
            name="on-call mail", kind="email", recipients="oncall@example.com, lead@example.com"
        ),
        "webhook": AlertChannel.objects.create(
            name="chat", kind="webhook", url=webhook.url, signing_secret=SIGNING
        ),
        "sentry": AlertChannel.objects.create(name="sentry", kind="sentry", sentry_dsn=sentry.dsn),
    }


def random_name() -> str:
    return f"s-{secrets.token_hex(4)}"
