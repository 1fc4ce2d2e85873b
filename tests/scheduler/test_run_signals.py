"""Run history through Celery's signals, on the real database and broker: plain
django-celery-beat entries (no middleware), and what only the worker's main process sees (a
hard time limit, a worker lost without a redelivery)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import current_app
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduler.beat.dispatch import Dispatcher
from scheduler.beat.entries import reconcile
from scheduler.runs import plain_tasks as signals
from scheduler.runs.models import JobRun
from tests.fixtures.sample_app import tasks as plain_tasks
from tests.scheduler.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status


@pytest.fixture(autouse=True)
def connected():
    signals.connect()
    yield
    signals.disconnect()


@pytest.fixture
def plain(clock, queue_name):
    """publish(**kwargs) -> (run, message): one beat occurrence of a plain task entry."""
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    made = []

    def publish(**kwargs) -> tuple[JobRun, tuple[dict, dict]]:
        entry = PeriodicTask.objects.create(
            name=f"plain {uuid.uuid4().hex[:6]}",
            task="tests.plain_add",
            interval=every,
            args=json.dumps([2, 3]),
            kwargs=json.dumps(kwargs),
            queue=queue_name,
        )
        made.append(entry)
        reconcile(clock.now())
        clock.advance(seconds=11)
        Dispatcher(current_app, clock).run_due()
        [(headers, body)] = [
            m for m in drain(queue_name) if m[0]["periodic_task_name"] == entry.name
        ]
        return JobRun.objects.get(periodic_task=entry), (headers, body)

    return publish


def run_eagerly(message: tuple[dict, dict]):
    headers, kwargs = message
    task = plain_tasks.plain_add
    custom = {k: v for k, v in headers.items() if k in ("attempt_id", "scheduled_for", "trigger")}
    return task.apply(args=[2, 3], kwargs=kwargs, task_id=headers["id"], headers=custom)


def test_a_plain_task_run_is_recorded(plain):
    run, message = plain(password="pw-secret")
    assert run_eagerly(message).get() == 5
    run.refresh_from_db()
    assert (run.status, run.task_name, run.args) == ("succeeded", "tests.plain_add", [2, 3])
    assert run.params == {"password": "********"} and run.result == "5"
    assert "adding 2 and 3" in run.logs and run.worker_pid
    assert run.started_at <= run.finished_at and run.duration is not None


def test_a_plain_task_message_from_an_earlier_beat_is_recorded(plain):
    run, (headers, body) = plain()
    assert headers["attempt_id"] == headers["occurrence_id"] == run.pk
    earlier = {k: v for k, v in headers.items() if k != "attempt_id"}
    task = plain_tasks.plain_add
    custom = {k: v for k, v in earlier.items() if k in ("occurrence_id", "scheduled_for")}
    assert task.apply(args=[2, 3], kwargs=body, task_id=headers["id"], headers=custom).get() == 5
    run.refresh_from_db()
    assert (run.status, run.result) == ("succeeded", "5")


def test_a_failing_plain_task_keeps_its_error_and_a_soft_limit_is_a_timeout(plain):
    failed, message = plain(fail=True)
    run_eagerly(message)
    failed.refresh_from_db()
    assert (failed.status, failed.error_type, failed.error_message) == (
        "failed",
        "ValueError",
        "cannot add 2 and 3",
    )
    assert "Traceback" in failed.traceback and "ValueError: cannot add 2 and 3" in failed.traceback
    slow, message = plain(soft=True)
    run_eagerly(message)
    slow.refresh_from_db()
    assert slow.status == "timed_out"


def test_a_plain_task_redelivered_after_a_lost_worker_is_a_new_attempt(plain):
    run, (headers, _) = plain()
    JobRun.objects.filter(pk=run.pk).update(status=Status.RUNNING)  # its worker died
    task = plain_tasks.plain_add
    task.push_request(
        id=headers["id"],
        headers={"occurrence_id": run.pk},
        delivery_info={"routing_key": "q", "redelivered": True},
        hostname="w2@host",
    )
    try:
        signals.on_prerun(sender=task, task_id=headers["id"], task=task, args=[2, 3], kwargs={})
        signals.on_postrun(sender=task, task_id=headers["id"], retval=5, state="SUCCESS")
    finally:
        task.pop_request()
    lost, rerun = JobRun.objects.filter(periodic_task=run.periodic_task).order_by("attempt")
    assert (lost.status, lost.error_type) == ("lost", "WorkerLost")
    assert (rerun.attempt, rerun.trigger, rerun.status, rerun.occurrence_id) == (
        2,
        "retry",
        "succeeded",
        run.pk,
    )
    assert rerun.worker_host == "w2@host" and rerun.result == "5"


def test_a_duplicate_plain_delivery_is_not_recorded_twice(plain, caplog):
    run, message = plain()
    run_eagerly(message)
    run_eagerly(message)  # a second copy: it runs (a signal cannot stop it), unrecorded
    assert list(JobRun.objects.filter(periodic_task=run.periodic_task).values_list("status")) == [
        ("succeeded",)
    ]
    assert "already succeeded: duplicate delivery; this delivery runs unrecorded" in caplog.text


@pytest.mark.parametrize(
    ("exception", "status", "fragment"),
    [
        (TimeLimitExceeded(10), "timed_out", "hard time limit (10s) exceeded"),
        (WorkerLostError("signal 9"), "lost", "the worker process running the job died"),
    ],
)
def test_the_main_process_records_a_killed_job(clock, exception, status, fragment):
    task_id = uuid.uuid4()
    run = JobRun.objects.create(
        task_name="tests.touch_file",
        scheduled_for=clock.now(),
        status=Status.RUNNING,
        task_id=task_id,
        started_at=clock.now() - timedelta(seconds=10),
    )
    catalog_task = current_app.tasks["tests.touch_file"]
    signals.on_failure(sender=catalog_task, task_id=str(task_id), exception=exception)
    run.refresh_from_db()
    assert run.status == status and fragment in run.error_message
    assert run.error_type == type(exception).__name__ and run.duration >= 10
    # Only a running attempt is touched: a second report changes nothing.
    signals.on_failure(sender=catalog_task, task_id=str(task_id), exception=exception)
    assert JobRun.objects.get(pk=run.pk).finished_at == run.finished_at


def test_a_task_no_worker_knows_fails_its_run_with_the_reason(clock, announced):
    run = JobRun.objects.create(
        task_name="tests.no_such_task", scheduled_for=clock.now(), status="queued"
    )
    message = type("Message", (), {"headers": {"occurrence_id": str(run.pk), "id": "x"}})()
    signals.on_unknown_task(message=message, name="tests.no_such_task")
    run.refresh_from_db()
    assert (run.status, run.error_type) == ("failed", "NotRegistered")
    assert run.error_message == "no worker knows task 'tests.no_such_task'"
    assert announced == [("finished", run.pk, None, "failed")]
    signals.on_rejected(message=message, exc=ValueError("bad"))  # already failed: left alone
    assert JobRun.objects.get(pk=run.pk).error_type == "NotRegistered"
    signals.on_rejected(message=type("M", (), {"headers": {}})())  # not an occurrence
