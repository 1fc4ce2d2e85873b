"""Retry and cancel against a real ``celery worker``: a cancelled running job is killed and
stays cancelled, a cancelled queued run is dropped by the worker, a retry runs."""

from __future__ import annotations

import pytest
from django.utils import timezone

from jobs_catalog.models import JobDefinition
from scheduler.beat.dispatch import Dispatcher
from scheduler.clock import SystemClock
from scheduler.runs.actions import cancel_run, retry_run
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import Outbox
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.support.processes import celery_worker, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status


def schedule_of(platform, name: str, job: str, params: dict) -> Schedule:
    definition = JobDefinition.objects.get(name=job)
    schedule = Schedule(
        name=name, job=definition, cron="0 0 1 1 *", params=params, queue=platform.queue
    )
    return save_schedule(schedule)


def status(run: JobRun) -> str:
    return JobRun.objects.get(pk=run.pk).status


def test_cancelling_a_running_run_kills_its_job(platform, client_app):
    slow = schedule_of(platform, "slow", "tests.sleep", {"seconds": 8})
    marker = platform.tmp_path / "after.txt"
    quick = schedule_of(platform, "quick", "tests.touch_file", {"path": str(marker)})
    dispatcher = Dispatcher(client_app, SystemClock())
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue) as worker:
        [run] = dispatcher.outbox.enqueue(slow, [timezone.now()], JobRun.Trigger.MANUAL)
        wait_for(lambda: status(run) == Status.RUNNING, 30, "the slow run to start")
        result = cancel_run(run.pk, None, app=client_app)
        assert result.warning == "" and result.run.status == Status.CANCELLED
        worker.wait_for_output(f"Terminating {run.task_id}", timeout=15)
        dispatcher.outbox.enqueue(quick, [timezone.now()], JobRun.Trigger.MANUAL)
        wait_for(marker.exists, 30, "the next job to run")
    cancelled = JobRun.objects.get(pk=run.pk)
    assert cancelled.status == Status.CANCELLED and "(was running)" in cancelled.note
    # The one pool process that ran the slow job was killed: the next job ran in its
    # replacement (had it only been left to finish, the same process would have run it).
    [(_, pid, _)] = [line.split() for line in marker.read_text().splitlines()]
    assert cancelled.worker_pid and int(pid) != cancelled.worker_pid
    assert f"tests.sleep[{run.task_id}] succeeded" not in worker.output()


def test_a_run_cancelled_while_queued_is_dropped_by_the_worker(platform, client_app):
    marker = platform.tmp_path / "never.txt"
    schedule = schedule_of(platform, "queued", "tests.touch_file", {"path": str(marker)})
    [run] = Outbox(client_app, SystemClock()).enqueue(
        schedule, [timezone.now()], JobRun.Trigger.MANUAL
    )
    assert status(run) == Status.QUEUED
    cancel_run(run.pk, None, app=client_app)
    # A worker started afterwards never heard the revoke: the run's status stops it.
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue) as worker:
        worker.wait_for_output(f"run {run.pk} is already cancelled", timeout=30)
    assert not marker.exists()
    assert status(run) == Status.CANCELLED


def test_a_retry_runs_as_the_next_attempt(platform, client_app):
    marker = platform.tmp_path / "retried.txt"
    schedule = schedule_of(platform, "flaky", "tests.touch_file", {"path": str(marker)})
    failed = JobRun.objects.create(
        schedule=schedule,
        periodic_task=schedule.periodic_task,
        task_name="tests.touch_file",
        scheduled_for=timezone.now(),
        status=Status.FAILED,
    )
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue):
        retry = retry_run(failed.pk, None, app=client_app).run
        wait_for(lambda: status(retry) == Status.SUCCEEDED, 30, "the retry to succeed")
    assert (retry.attempt, retry.occurrence_id) == (2, failed.pk)
    assert len(marker.read_text().splitlines()) == 1
    assert status(failed) == Status.FAILED  # history is not rewritten
