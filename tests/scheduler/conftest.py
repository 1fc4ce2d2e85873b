"""Fixtures for the scheduler: an injected clock, schedules, and a queue of the test's own on
the configured broker (the filesystem broker on a laptop, Redis in CI)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app

from jobs_catalog.models import JobDefinition
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule


class ManualClock:
    def __init__(self, now: datetime):
        self.current = now

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC))


@pytest.fixture
def queue_name():
    """A queue no other test or run uses; drained and deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    with current_app.connection_for_write() as conn:
        simple = conn.SimpleQueue(name)
        simple.clear()
        with contextlib.suppress(Exception):  # a transport may not support deleting
            simple.queue.delete()
        simple.close()


def drain(queue: str, timeout: float = 2.0) -> list:
    """Every message waiting on ``queue`` (acknowledged): [(headers, kwargs)]."""
    out = []
    with current_app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                message = simple.get(block=True, timeout=timeout)
                message.ack()
                _, kwargs, _ = message.decode()
                out.append((message.headers, kwargs))
                timeout = 0.3
        except simple.Empty:
            pass
        finally:
            simple.close()
    return out


@pytest.fixture
def make_schedule(queue_name):
    def make(name: str = "every minute", cron: str = "* * * * *", **fields) -> Schedule:
        job = JobDefinition.objects.get(name=fields.pop("job", "builtin.http_request"))
        params = fields.pop("params", {"url": "http://127.0.0.1:9/health"})
        schedule = Schedule(
            name=name, job=job, cron=cron, params=params, queue=queue_name, **fields
        )
        return save_schedule(schedule)

    return make


@pytest.fixture
def announced():
    """What the run events announced: ("started" | "finished", run id, schedule id, status)."""
    from scheduler.runs import events as run_events

    seen: list[tuple] = []

    def on_started(sender, run_id, schedule_id, **kwargs):
        seen.append(("started", run_id, schedule_id, "running"))

    def on_finished(sender, run_id, schedule_id, status, **kwargs):
        seen.append(("finished", run_id, schedule_id, status))

    run_events.run_started.connect(on_started, dispatch_uid="test.started")
    run_events.run_finished.connect(on_finished, dispatch_uid="test.finished")
    yield seen
    run_events.run_started.disconnect(dispatch_uid="test.started")
    run_events.run_finished.disconnect(dispatch_uid="test.finished")
