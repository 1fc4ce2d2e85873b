"""Progress and cancellation on the worker, on the real database and broker, through the
real catalog task and the configured middlewares (as ``test_run_history`` runs them): a
job's reports are stored throttled, its last one kept, its secrets masked; a job that never
reports costs nothing; a cancelled run's job sees it and stops, stays cancelled, is not
retried, keeps its logs and last progress, and its end is announced once."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs_catalog import JobContext, Param, RetryPolicy
from jobs_catalog import context as context_module
from jobs_catalog.context import PROGRESS_WRITES_PER_SECOND, Progress
from jobs_catalog.definition import Job
from jobs_catalog.errors import JobCancelled
from jobs_catalog.models import JobDefinition
from jobs_catalog.tasks import CatalogTask, bind_task
from scheduler.alerts import effective as alert_config
from scheduler.runs import history_connection, recording
from scheduler.runs.actions import cancel_run
from scheduler.runs.history_connection import OwnConnection
from scheduler.runs.models import JobRun
from scheduler.runs.progress import RunProgress
from scheduler.runs.recording import Claimed
from scheduler.runs.redaction import Redactor
from scheduler.schedules.models import OverlapPolicy, Schedule
from scheduler.schedules.periodic import save_schedule
from tests.scheduler.conftest import drain
from tests.scheduler.test_run_history import SECRET, T0, deliver, message_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status
#: Retries anything: a cancel must still not be retried.
RETRY_ANYTHING = RetryPolicy(max_attempts=3, backoff_base=1, backoff_cap=1, retry_on=(Exception,))
seen: list[JobContext] = []


@pytest.fixture(autouse=True)
def _reset():
    seen.clear()


@pytest.fixture
def task(clock, monkeypatch):
    """bind(func, **job options) -> the catalog task of a test job, run through the
    configured middlewares reading the test's clock."""
    chain = tuple(import_string(path)(clock=clock) for path in settings.JOBS_TASK_MIDDLEWARE)
    monkeypatch.setattr(CatalogTask, "middleware", lambda self: chain)

    def bind(func, **options):
        name = f"tests.progress.{func.__name__}"
        current_app.tasks.pop(name, None)  # Celery keeps the first task of a name: rebind
        return bind_task(Job(name=name, func=func, title="t", **options))

    return bind


@pytest.fixture
def make_schedule(queue_name):
    """A schedule whose entry the tests point at their own job."""

    def make(**fields) -> Schedule:
        schedule = Schedule(
            name=f"progress {uuid.uuid4().hex[:6]}",
            job=JobDefinition.objects.get(name="builtin.http_request"),
            cron="* * * * *",
            params={"url": "http://x", "token": SECRET},
            queue=queue_name,
            **fields,
        )
        return save_schedule(schedule, validate=False)

    return make


@pytest.fixture
def schedule(make_schedule):
    return make_schedule()


@pytest.fixture
def ask_at_once(monkeypatch):
    """``ctx.cancelled`` asks the database every time it is read."""
    monkeypatch.setattr(context_module, "CANCEL_CHECK_EVERY", 0.0)


def reports(ctx: JobContext, url: str = "", token: str = Param("", secret=True)) -> int:
    seen.append(ctx)
    for done in range(1, 3001):
        ctx.progress(done, 3000, f"file {done} of 3000, key {token}")
    return done


def quiet(ctx: JobContext, url: str = "", token: str = "") -> str:
    seen.append(ctx)
    ctx.logger.info("working")
    return "done"


def cancelled_then_returns(ctx: JobContext, url: str = "", token: str = "") -> str:
    """Reports, is cancelled meanwhile, sees it at its next check and returns early."""
    seen.append(ctx)
    for step in range(1, 101):
        ctx.progress(step, 100, f"step {step}")
        ctx.logger.info("step %d", step)
        if step == 3:
            cancel_run(ctx.run_id, None, app=current_app)
        if ctx.cancelled:
            ctx.logger.info("stopping at step %d", step)
            return "stopped"
    return "finished"


def cancelled_then_raises(ctx: JobContext, url: str = "", token: str = "") -> str:
    seen.append(ctx)
    for step in range(1, 101):
        ctx.progress(step, 100, f"step {step}")
        if step == 5:
            cancel_run(ctx.run_id, None, app=current_app)
        ctx.stop_if_cancelled()
    return "finished"


def gives_up(ctx: JobContext, url: str = "", token: str = Param("", secret=True)) -> None:
    seen.append(ctx)
    ctx.progress(7, None, "nothing left to do")
    raise JobCancelled(f"the source is gone ({token})")


def finishes_regardless(ctx: JobContext, url: str = "", token: str = "") -> str:
    """Cancelled meanwhile, but never looks."""
    seen.append(ctx)
    cancel_run(ctx.run_id, None, app=current_app)
    ctx.logger.info("finished all the same")
    return "done"


def stored_progress(run_id: int) -> dict:
    return JobRun.objects.get(pk=run_id).progress


# --- progress ------------------------------------------------------------------------------
def test_reports_are_throttled_and_the_last_one_is_kept_with_secrets_masked(
    task, schedule, clock, queue_name
):
    reporting = task(reports)
    message = message_for(reporting, schedule, clock, queue_name)
    alert_config.cached_channels()
    began = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        assert deliver(reporting, message, queue_name) == 3000
    took = time.monotonic() - began
    sql = [q["sql"] for q in queries]
    writes = [i for i, s in enumerate(sql) if s.startswith("UPDATE scheduler_jobrun SET progress")]
    # 3,000 reports (in well under a second): the first, the last (flushed), and at most
    # PROGRESS_WRITES_PER_SECOND a second between.
    assert 2 <= len(writes) <= 2 + math.ceil(took * PROGRESS_WRITES_PER_SECOND), (took, sql)
    ended = next(i for i, s in enumerate(sql) if "SET status = 'succeeded'" in s)
    assert writes[-1] < ended  # the last report was written while the attempt ran
    run = JobRun.objects.get(pk=seen[0].run_id)
    assert run.status == Status.SUCCEEDED
    assert run.progress == {
        "done": 3000,
        "total": 3000,
        "message": "file 3000 of 3000, key ********",
        "at": T0.isoformat(),
    }
    assert SECRET not in str(run.progress)


def test_a_job_that_never_reports_or_asks_costs_no_query(task, schedule, clock, queue_name):
    quiet_task = task(quiet)
    message = message_for(quiet_task, schedule, clock, queue_name)
    alert_config.cached_channels()  # warm the per-process cache, as a worker's is
    with CaptureQueriesContext(connection) as queries:
        deliver(quiet_task, message, queue_name)
    assert len(queries) == 2, [q["sql"] for q in queries]  # its start and its end
    run = JobRun.objects.get(pk=seen[0].run_id)
    assert run.status == Status.SUCCEEDED and run.progress is None
    assert seen[0].control is None  # the run is over: its context reports nowhere now


def test_a_report_goes_on_the_workers_own_connection_outside_the_jobs_transaction(
    monkeypatch,
):
    if connection.vendor != "postgresql":
        pytest.skip("the worker's own connection is PostgreSQL's")
    own = OwnConnection()
    monkeypatch.setattr(history_connection, "own", own)
    try:
        now = timezone.now()
        run = JobRun.objects.create(
            task_name="t", scheduled_for=now, status=Status.RUNNING, started_at=now
        )
        control = RunProgress(Claimed(run.pk, 1, 1), Redactor(), clock=_Fixed(now))
        with pytest.raises(RuntimeError), transaction.atomic():
            JobRun.objects.filter(pk=run.pk).update(note="rolled back")
            control.report(Progress(2, 5, "two"))
            assert own.unconfirmed == 1  # sent, not waited for
            raise RuntimeError("the job's transaction rolls back")
        recording.settle()
        run.refresh_from_db()
        assert run.note == "" and run.progress["done"] == 2
        assert control.is_cancelled() is False
        JobRun.objects.filter(pk=run.pk).update(status=Status.CANCELLED)
        assert control.is_cancelled() is True
        # A cancelled attempt still takes a report (its job is stopping); an ended one not.
        control.report(Progress(3, 5, "three"))
        recording.settle()
        JobRun.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED)
        control.report(Progress(4, 5, "four"))
        recording.settle()
        assert stored_progress(run.pk)["done"] == 3
    finally:
        own.discard()


def test_a_report_that_cannot_be_written_never_fails_the_job(caplog):
    now = timezone.now()
    run = JobRun.objects.create(
        task_name="t", scheduled_for=now, status=Status.RUNNING, started_at=now
    )
    control = RunProgress(Claimed(run.pk, 1, 1), Redactor(), clock=_Fixed(now))
    caplog.set_level(logging.WARNING, logger="scheduler.runs.progress")
    with transaction.atomic():
        # The job's own transaction breaks: nothing more can be written in it.
        with connection.cursor() as cursor, contextlib.suppress(DatabaseError):
            cursor.execute("SELECT 1 / 0")
        control.report(Progress(1, 2))
        control.report(Progress(2, 2))
        assert control.is_cancelled() is False
        transaction.set_rollback(True)
    assert stored_progress(run.pk) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"run {run.pk}: its progress was not stored" in warnings[0]


class _Fixed:
    def __init__(self, now):
        self.current = now

    def now(self):
        return self.current


# --- cancellation ----------------------------------------------------------------------------
def test_a_job_that_sees_the_cancel_stops_and_the_run_stays_cancelled(
    task, schedule, clock, queue_name, announced, ask_at_once
):
    job_task = task(cancelled_then_returns, retry=RETRY_ANYTHING, cancellable=True)
    message = message_for(job_task, schedule, clock, queue_name)
    assert deliver(job_task, message, queue_name) == "stopped"
    run = JobRun.objects.get(pk=seen[0].run_id)
    assert run.status == Status.CANCELLED and run.attempt == 1
    assert "Cancelled by someone" in run.note and "The job stopped at" in run.note
    # Its log lines and its last report are kept.
    assert "step 3" in run.logs and "stopping at step 3" in run.logs
    assert run.progress["done"] == 3 and run.progress["message"] == "step 3"
    assert run.result == "" and drain(queue_name, 0.5) == []  # no retry
    # The cancel announced the end; the worker does not again.
    assert announced == [
        ("started", run.pk, schedule.pk, "running"),
        ("finished", run.pk, schedule.pk, "cancelled"),
    ]


def test_job_cancelled_raised_at_the_check_is_not_retried(
    task, schedule, clock, queue_name, announced, ask_at_once
):
    job_task = task(cancelled_then_raises, retry=RETRY_ANYTHING, cancellable=True)
    message = message_for(job_task, schedule, clock, queue_name)
    with pytest.raises(JobCancelled):
        deliver(job_task, message, queue_name)
    [run] = JobRun.objects.filter(schedule=schedule)
    assert run.status == Status.CANCELLED and run.progress["done"] == 5
    assert run.error_type == "" and run.traceback == ""
    assert drain(queue_name, 0.5) == []
    assert [e for e in announced if e[0] == "finished"] == [
        ("finished", run.pk, schedule.pk, "cancelled")
    ]


def test_a_job_may_cancel_its_own_run(task, schedule, clock, queue_name, announced):
    job_task = task(gives_up, retry=RETRY_ANYTHING)
    headers, kwargs = message_for(job_task, schedule, clock, queue_name)
    with pytest.raises(JobCancelled):
        deliver(job_task, (headers, {**kwargs, "token": SECRET}), queue_name)
    [run] = JobRun.objects.filter(schedule=schedule)
    assert run.status == Status.CANCELLED and run.finished_at is not None
    assert run.note == "Cancelled by the job: the source is gone (********)."
    assert run.progress["done"] == 7 and run.progress["total"] is None
    assert drain(queue_name, 0.5) == []
    assert [e for e in announced if e[0] == "finished"] == [
        ("finished", run.pk, schedule.pk, "cancelled")
    ]


def test_a_cancellable_job_that_finishes_after_a_cancel_is_not_recorded_succeeded(
    task, schedule, clock, queue_name, announced
):
    job_task = task(finishes_regardless, cancellable=True)
    message = message_for(job_task, schedule, clock, queue_name)
    deliver(job_task, message, queue_name)
    run = JobRun.objects.get(pk=seen[0].run_id)
    assert run.status == Status.CANCELLED and run.result == ""
    assert "finished all the same" in run.logs
    assert [e for e in announced if e[0] == "finished"] == [
        ("finished", run.pk, schedule.pk, "cancelled")
    ]


def terminated_after_cancel(ctx: JobContext, url: str = "", token: str = "") -> None:
    """Cancelled, then its process terminated: the pool process leaves through SystemExit."""
    seen.append(ctx)
    ctx.progress(4, 10, "four")
    ctx.logger.info("working on")
    cancel_run(ctx.run_id, None, app=current_app)
    raise SystemExit(-241)


def test_a_job_terminated_after_its_cancel_keeps_its_lines_and_is_not_announced_failed(
    task, schedule, clock, queue_name, announced
):
    job_task = task(terminated_after_cancel, retry=RETRY_ANYTHING)  # not cancellable
    message = message_for(job_task, schedule, clock, queue_name)
    with pytest.raises(SystemExit):
        deliver(job_task, message, queue_name)
    run = JobRun.objects.get(pk=seen[0].run_id)
    assert run.status == Status.CANCELLED and "The job was terminated at" in run.note
    assert "working on" in run.logs and run.progress["done"] == 4
    assert drain(queue_name, 0.5) == []
    assert [e for e in announced if e[0] == "finished"] == [
        ("finished", run.pk, schedule.pk, "cancelled")
    ]


def test_the_occurrence_buffered_behind_a_cancelled_run_goes_once_its_job_stopped(
    task, make_schedule, clock, queue_name, ask_at_once
):
    schedule = make_schedule(overlap_policy=OverlapPolicy.BUFFER_ONE)
    job_task = task(cancelled_then_returns, cancellable=True)
    message = message_for(job_task, schedule, clock, queue_name)
    waiting = JobRun.objects.create(
        schedule=schedule,
        periodic_task=schedule.periodic_task,
        task_name=job_task.name,
        scheduled_for=T0 + timedelta(minutes=5),
        status=Status.BUFFERED,
    )
    assert deliver(job_task, message, queue_name) == "stopped"
    assert JobRun.objects.get(pk=seen[0].run_id).status == Status.CANCELLED
    # Released (published) once the cancelled run's job was over.
    assert JobRun.objects.get(pk=waiting.pk).status == Status.QUEUED
    [(headers, _)] = drain(queue_name)
    assert headers["attempt_id"] == waiting.pk
