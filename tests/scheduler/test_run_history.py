"""The run history on the worker, on the real database and broker: each rule of the
middlewares of ``scheduler.runs.middleware``, in the order the settings give them, through
the real catalog task (``CatalogTask.execute`` with a pushed request, as the worker calls
it), with an injected clock."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils.module_loading import import_string

from jobs_catalog import JobContext, Param, ParameterError, RetryPolicy
from jobs_catalog.definition import Job
from jobs_catalog.middleware import RunInfo
from jobs_catalog.models import JobDefinition
from jobs_catalog.secrets import SEALED, SecretError, is_sealed, new_key, seal, unseal_params
from jobs_catalog.tasks import CatalogTask, bind_task
from scheduler.alerts import effective as alert_config
from scheduler.beat.dispatch import Dispatcher
from scheduler.runs.middleware import claim as claim_middleware
from scheduler.runs.middleware.claim import Claim
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import Outbox
from scheduler.schedules.models import OverlapPolicy, Schedule
from scheduler.schedules.periodic import save_schedule
from tests.scheduler.conftest import drain

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status
T0 = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
SECRET = "s3cr3t-key-value"
calls: list[JobContext] = []


def steady(ctx: JobContext, url: str = "http://x", token: str = Param("", secret=True)) -> dict:
    calls.append(ctx)
    ctx.logger.info("fetching %s with %s", url, token)
    return {"url": url, "echo": token}


def unreliable(ctx: JobContext, url: str = "http://x", token: str = Param("", secret=True)):
    calls.append(ctx)
    ctx.logger.warning("calling with %s", token)
    raise ConnectionError(f"refused {token}")


def buggy(ctx: JobContext, url: str = "http://x", token: str = "") -> None:
    calls.append(ctx)
    raise KeyError("bug")


def slow(ctx: JobContext, url: str = "http://x", token: str = "") -> None:
    calls.append(ctx)
    try:
        raise SoftTimeLimitExceeded()
    except SoftTimeLimitExceeded:
        ctx.logger.warning("cleaning up")
        raise


def chatty(ctx: JobContext, url: str = "http://x", lines: int = 600) -> int:
    def burst(n: int) -> None:
        for i in range(n):
            ctx.logger.info("thread %s line %d", threading.current_thread().name, i)

    threads = [threading.Thread(target=burst, args=(lines // 4,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return lines


POLICY = RetryPolicy(max_attempts=3, backoff_base=10, backoff_cap=15)


@pytest.fixture(autouse=True)
def _reset_calls():
    calls.clear()


@pytest.fixture
def middleware(clock, monkeypatch):
    """The configured middlewares, in their order, reading the test's clock."""
    chain = tuple(import_string(path)(clock=clock) for path in settings.JOBS_TASK_MIDDLEWARE)
    monkeypatch.setattr(CatalogTask, "middleware", lambda self: chain)
    return chain


@pytest.fixture
def task(middleware):
    """bind(func, **job options) -> the catalog task of a test job named tests.history.<f>"""

    def bind(func, **options):
        options.setdefault("retry", POLICY)
        name = f"tests.history.{func.__name__}"
        current_app.tasks.pop(name, None)  # Celery keeps the first task of a name: rebind
        return bind_task(Job(name=name, func=func, title="t", **options))

    return bind


@pytest.fixture
def make_test_schedule(queue_name):
    """A schedule whose entry the tests point at their own job (its parameters are those
    of the test jobs, so they are not validated against the schedule's catalog job)."""

    def make(**fields) -> Schedule:
        schedule = Schedule(
            name=f"history {uuid.uuid4().hex[:6]}",
            job=JobDefinition.objects.get(name="builtin.http_request"),
            cron="* * * * *",
            params={"url": "http://x", "token": SECRET},
            queue=queue_name,
            **fields,
        )
        return save_schedule(schedule, validate=False)

    return make


@pytest.fixture
def schedule(make_test_schedule):
    return make_test_schedule()


def enqueue(clock, schedule, minute: int = 1) -> JobRun:
    [run] = Outbox(current_app, clock).enqueue(
        schedule, [T0.replace(second=0) + timedelta(minutes=minute)], JobRun.Trigger.MANUAL
    )
    return run


def deliver(task, message: tuple[dict, dict], queue: str, *, redelivered: bool = False):
    """Run ``message`` (headers, kwargs) as a worker would deliver it."""
    headers, kwargs = message
    custom = {k: v for k, v in headers.items() if k not in CELERY_HEADERS}
    task.push_request(
        id=headers["id"],
        headers=custom,
        hostname="w1@test-host",
        delivery_info={"routing_key": queue, "redelivered": redelivered},
    )
    try:
        return task.execute(kwargs)
    finally:
        task.pop_request()


CELERY_HEADERS = {
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
    "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
    "replaced_task_nesting", "stamped_headers", "stamps",
}  # fmt: skip


def message_for(task, schedule, clock, queue, minute: int = 1) -> tuple[dict, dict]:
    """Enqueue one occurrence of ``schedule`` for ``task`` and take its message off the queue."""
    schedule.periodic_task.task = task.name
    schedule.periodic_task.save()
    enqueue(clock, schedule, minute)
    [message] = drain(queue)
    return message


def attempts(first: JobRun) -> list[JobRun]:
    return list(JobRun.objects.filter(Q(pk=first.pk) | Q(occurrence=first)).order_by("attempt"))


# --- start and end -------------------------------------------------------------------------
def test_a_run_takes_one_statement_to_start_and_one_to_end(task, schedule, clock, queue_name):
    steady_task = task(steady)
    message = message_for(steady_task, schedule, clock, queue_name)
    clock.advance(seconds=2)
    alert_config.cached_channels()  # warm the per-process cache, as a worker's is
    with CaptureQueriesContext(connection) as queries:
        result = deliver(steady_task, message, queue_name)
    assert result == {"url": "http://x", "echo": SECRET}
    # Start and end; alerting's question (does its schedule have an open incident?) is
    # answered by the start.
    sql = [q["sql"] for q in queries]
    assert len(sql) == 2, sql
    assert sql[0].startswith("UPDATE scheduler_jobrun SET status = 'running'")
    assert "FROM scheduler_incident" in sql[0]
    assert sql[1].startswith("UPDATE scheduler_jobrun SET status = 'succeeded'")
    run = JobRun.objects.get(schedule=schedule)
    assert (run.status, run.attempt, run.max_attempts, run.trigger) == ("succeeded", 1, 3, "manual")
    assert run.started_at == T0 + timedelta(seconds=2) == run.finished_at
    assert run.queue_wait == pytest.approx(2.0, abs=1e-3) and run.duration == pytest.approx(
        0.0, abs=1e-3
    )
    assert (run.worker_host, run.queue) == ("w1@test-host", queue_name)
    assert run.worker_pid is not None
    assert run.params == {"url": "http://x", "token": "********"}
    assert run.result == "{'echo': '********', 'url': 'http://x'}"  # reprlib sorts keys
    assert "fetching http://x with ********" in run.logs and SECRET not in run.logs
    assert calls[0].run_id == run.pk and (calls[0].attempt, calls[0].max_attempts) == (1, 3)


def test_a_message_names_its_attempt_under_its_former_header_too(task, schedule, clock, queue_name):
    steady_task = task(steady)
    headers, kwargs = message_for(steady_task, schedule, clock, queue_name)
    run = JobRun.objects.get(schedule=schedule)
    # The former name stays for workers of an earlier version.
    assert headers["attempt_id"] == headers["occurrence_id"] == run.pk
    # A message only an earlier beat could send (no attempt_id) finds its attempt...
    earlier = {k: v for k, v in headers.items() if k != "attempt_id"}
    deliver(steady_task, (earlier, kwargs), queue_name)
    assert JobRun.objects.get(pk=run.pk).status == Status.SUCCEEDED
    # ...and one naming the attempt by attempt_id alone does too.
    headers, kwargs = message_for(steady_task, schedule, clock, queue_name, minute=2)
    later = {k: v for k, v in headers.items() if k != "occurrence_id"}
    deliver(steady_task, (later, kwargs), queue_name)
    second = JobRun.objects.get(pk=headers["attempt_id"])
    assert second.status == Status.SUCCEEDED and calls[-1].run_id == second.pk
    assert JobRun.objects.filter(schedule=schedule).count() == 2  # no direct-call row made


def test_a_duplicate_delivery_runs_nothing(task, schedule, clock, queue_name):
    steady_task = task(steady)
    message = message_for(steady_task, schedule, clock, queue_name)
    deliver(steady_task, message, queue_name)
    finished = JobRun.objects.get(schedule=schedule)
    # The same message again (a republish), and as a redelivery: the run is over either way.
    assert deliver(steady_task, message, queue_name) is None
    assert deliver(steady_task, message, queue_name, redelivered=True) is None
    assert len(calls) == 1
    assert list(JobRun.objects.filter(schedule=schedule)) == [finished]
    assert JobRun.objects.get(pk=finished.pk).status == Status.SUCCEEDED


def test_a_republish_racing_a_running_start_does_not_run_twice(
    task, schedule, clock, queue_name, middleware
):
    steady_task = task(steady)
    message = message_for(steady_task, schedule, clock, queue_name)
    started = []

    def second_delivery(ctx: JobContext, url: str = "", token: str = ""):
        # While the first delivery runs, the sweep's copy (not redelivered) arrives.
        started.append(deliver(steady_task, message, queue_name))
        return "first"

    racing = task(second_delivery)
    assert deliver(racing, (dict(message[0]), message[1]), queue_name) == "first"
    assert started == [None] and calls == []  # the copy did not run the job
    run = JobRun.objects.get(schedule=schedule)
    assert run.status == Status.SUCCEEDED and run.result == "'first'"


def test_a_redelivered_running_attempt_is_lost_and_rerun_once(task, schedule, clock, queue_name):
    steady_task = task(steady)
    message = message_for(steady_task, schedule, clock, queue_name)
    first = JobRun.objects.get(schedule=schedule)
    # The worker dies mid-run: its attempt stays running; the broker redelivers the message.
    JobRun.objects.filter(pk=first.pk).update(
        status=Status.RUNNING, started_at=clock.now(), max_attempts=3
    )
    clock.advance(seconds=5)
    assert deliver(steady_task, message, queue_name, redelivered=True) is None
    assert calls == []
    lost, rerun = attempts(first)
    assert (lost.status, lost.error_type, lost.finished_at) == ("lost", "WorkerLost", clock.now())
    assert lost.duration == pytest.approx(5.0, abs=1e-3)
    assert (rerun.attempt, rerun.trigger, rerun.status, rerun.occurrence_id) == (
        2,
        "retry",
        "queued",
        first.pk,
    )
    assert (rerun.scheduled_for, rerun.schedule_id) == (first.scheduled_for, schedule.pk)
    assert rerun.periodic_task_id == first.periodic_task_id and rerun.next_attempt_at is None
    # A second redelivery of the same message finds the attempt lost: nothing more.
    assert deliver(steady_task, message, queue_name, redelivered=True) is None
    [rerun_message] = drain(queue_name)
    assert rerun_message[0]["attempt_id"] == rerun.pk and rerun_message[0]["trigger"] == "retry"
    assert rerun_message[0]["id"] == str(rerun.task_id)
    # The worker sends the job's secret sealed, even one it was given in clear.
    assert is_sealed(rerun_message[1]["token"]) and SECRET not in json.dumps(rerun_message)
    assert unseal_params(rerun_message[1], ["token"]) == message[1]
    deliver(steady_task, rerun_message, queue_name)
    assert [c.attempt for c in calls] == [2]
    assert [r.status for r in attempts(first)] == ["lost", "succeeded"]


def test_a_lost_attempt_with_no_attempts_left_is_not_rerun(
    task, schedule, clock, queue_name, announced
):
    steady_task = task(steady, retry=RetryPolicy(max_attempts=1))
    message = message_for(steady_task, schedule, clock, queue_name)
    first = JobRun.objects.get(schedule=schedule)
    JobRun.objects.filter(pk=first.pk).update(status=Status.RUNNING, max_attempts=1)
    deliver(steady_task, message, queue_name, redelivered=True)
    assert [r.status for r in attempts(first)] == ["lost"] and drain(queue_name, 0.5) == []
    # The occurrence failed: announced (alerting listens).
    assert announced == [("finished", first.pk, schedule.pk, "lost")]


def test_runs_are_announced_when_they_start_and_end_but_not_a_lost_attempt_rerun(
    task, schedule, clock, queue_name, announced
):
    steady_task = task(steady)
    message = message_for(steady_task, schedule, clock, queue_name)
    first = JobRun.objects.get(schedule=schedule)
    deliver(steady_task, message, queue_name)
    assert announced == [
        ("started", first.pk, schedule.pk, "running"),
        ("finished", first.pk, schedule.pk, "succeeded"),
    ]
    announced.clear()
    second = message_for(steady_task, schedule, clock, queue_name, minute=2)
    lost = JobRun.objects.exclude(pk=first.pk).get(schedule=schedule)
    JobRun.objects.filter(pk=lost.pk).update(status=Status.RUNNING, max_attempts=3)
    deliver(steady_task, second, queue_name, redelivered=True)
    assert announced == []  # lost, with a rerun to come: no failure yet
    [rerun_message] = drain(queue_name)
    deliver(steady_task, rerun_message, queue_name)
    [_, rerun] = attempts(lost)
    assert announced == [
        ("started", rerun.pk, schedule.pk, "running"),
        ("finished", rerun.pk, schedule.pk, "succeeded"),
    ]


def test_a_direct_call_gets_its_row_at_start(task, clock, queue_name):
    steady_task = task(steady)
    task_id = str(uuid.uuid4())
    message = ({"id": task_id}, {"url": "http://y", "token": SECRET})
    deliver(steady_task, message, queue_name)
    run = JobRun.objects.get(task_id=task_id)
    assert (run.trigger, run.status, run.attempt, run.max_attempts) == ("direct", "succeeded", 1, 3)
    assert run.schedule is None and run.periodic_task is None
    assert run.scheduled_for == run.started_at == T0 and run.params["token"] == "********"
    # Delivered again, not redelivered: a duplicate.
    deliver(steady_task, message, queue_name)
    assert len(calls) == 1 and JobRun.objects.count() == 1


def test_a_redelivered_direct_call_is_lost_and_rerun(task, clock, queue_name):
    steady_task = task(steady)
    task_id = str(uuid.uuid4())
    JobRun.objects.create(
        task_name=steady_task.name,
        scheduled_for=T0,
        trigger="direct",
        status=Status.RUNNING,
        task_id=task_id,
        max_attempts=3,
        started_at=T0,
    )
    message = ({"id": task_id}, {"url": "http://y", "token": SECRET})
    deliver(steady_task, message, queue_name, redelivered=True)
    lost = JobRun.objects.get(task_id=task_id)
    [rerun_message] = drain(queue_name)
    deliver(steady_task, rerun_message, queue_name)
    lost, rerun = attempts(lost)
    assert (lost.status, rerun.status, rerun.attempt, rerun.trigger) == (
        "lost",
        "succeeded",
        2,
        "retry",
    )
    assert calls[0].attempt == 2 and calls[0].trigger == "retry"


# --- retries -------------------------------------------------------------------------------
def test_retryable_failures_are_retried_with_backoff_until_the_last_attempt(
    task, schedule, clock, queue_name, announced
):
    failing = task(unreliable)
    message = message_for(failing, schedule, clock, queue_name)
    first = JobRun.objects.get(schedule=schedule)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            deliver(failing, message, queue_name)
        clock.advance(seconds=20)
        queued = drain(queue_name, timeout=1.0)
        if queued:
            [message] = queued
            assert message[0]["eta"]  # published with its backoff as a countdown
    runs = attempts(first)
    assert [(r.attempt, r.status) for r in runs] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "failed"),
    ]
    # Each attempt's end is announced; only the last is a failure of the occurrence.
    assert [a[3] for a in announced if a[0] == "finished"] == ["retrying", "retrying", "failed"]
    assert [c.attempt for c in calls] == [1, 2, 3] and {c.max_attempts for c in calls} == {3}
    for run, ceiling in zip(runs, (10, 15), strict=False):
        assert 0 <= run.retry_delay <= ceiling
        assert run.next_attempt_at == run.finished_at + timedelta(seconds=run.retry_delay)
    for later in runs[1:]:
        assert (later.trigger, later.occurrence_id, later.scheduled_for) == (
            "retry",
            first.pk,
            first.scheduled_for,
        )
        assert later.schedule_id == schedule.pk and later.params["token"] == "********"
    last = runs[-1]
    assert last.retry_delay is None and last.next_attempt_at is None
    assert (last.error_type, last.error_message) == ("ConnectionError", "refused ********")
    assert "ConnectionError: refused ********" in last.traceback
    assert SECRET not in last.traceback + last.logs + last.error_message
    assert "calling with ********" in last.logs


@pytest.mark.parametrize("func", [buggy, slow], ids=["a bug", "a time limit"])
def test_a_bug_or_a_time_limit_is_not_retried(task, schedule, clock, queue_name, func):
    failing = task(func)
    message = message_for(failing, schedule, clock, queue_name)
    with pytest.raises((KeyError, SoftTimeLimitExceeded)):
        deliver(failing, message, queue_name)
    [run] = JobRun.objects.filter(schedule=schedule)
    expected = "failed" if func is buggy else "timed_out"
    assert (run.status, run.attempt) == (expected, 1) and drain(queue_name, 0.5) == []
    if func is slow:
        assert run.error_type == "billiard.exceptions.SoftTimeLimitExceeded"
        assert "cleaning up" in run.logs


def test_invalid_parameters_fail_without_a_retry(task, schedule, clock, queue_name):
    steady_task = task(steady)
    headers, _ = message_for(steady_task, schedule, clock, queue_name)
    with pytest.raises(ParameterError):
        deliver(steady_task, (headers, {"url": 5, "token": SECRET}), queue_name)
    [run] = JobRun.objects.filter(schedule=schedule)
    assert run.status == "failed" and "url: Input should be a valid string" in run.error_message
    assert drain(queue_name, 0.5) == [] and calls == []


def test_a_secret_no_key_opens_fails_the_attempt_at_once_and_clearly(
    task, schedule, clock, queue_name, settings
):
    steady_task = task(steady)
    headers, _ = message_for(steady_task, schedule, clock, queue_name)
    sealed = seal(SECRET)
    settings.SECRETS_ENCRYPTION_KEYS = [new_key()]  # this worker lacks the sealing key
    with pytest.raises(SecretError):
        deliver(steady_task, (headers, {"url": "http://y", "token": sealed}), queue_name)
    [run] = JobRun.objects.filter(schedule=schedule)
    assert (run.status, run.attempt, run.error_type) == (
        "failed",
        1,
        "jobs_catalog.secrets.SecretError",
    )
    assert run.error_message.startswith(
        "secret parameter 'token': none of the keys opens its stored value (this process uses "
        "SECRETS_ENCRYPTION_KEYS (1 key))"
    )
    assert run.params["token"] == "********" and run.finished_at == clock.now()
    assert sealed[SEALED] not in run.error_message + run.traceback
    assert drain(queue_name, 0.5) == [] and calls == []  # not retried; the job never ran


def test_the_schedule_and_the_run_override_the_job_policy(
    task, make_test_schedule, clock, queue_name
):
    failing = task(unreliable)
    schedule = make_test_schedule(retry_max_attempts=2, retry_backoff_base=0.5, retry_backoff_cap=1)
    message = message_for(failing, schedule, clock, queue_name)
    with pytest.raises(ConnectionError):
        deliver(failing, message, queue_name)
    first = JobRun.objects.get(schedule=schedule, attempt=1)
    assert first.max_attempts == 2 and 0 <= first.retry_delay <= 0.5
    [message] = drain(queue_name)
    with pytest.raises(ConnectionError):
        deliver(failing, message, queue_name)
    assert [r.status for r in attempts(first)] == ["retrying", "failed"]
    # The run layer (a message header) wins over the schedule.
    headers, kwargs = message_for(failing, schedule, clock, queue_name, minute=2)
    with pytest.raises(ConnectionError):
        deliver(failing, ({**headers, "retry_max_attempts": 1}, kwargs), queue_name)
    run = JobRun.objects.get(pk=headers["attempt_id"])
    assert (run.max_attempts, run.status) == (1, "failed") and drain(queue_name, 0.5) == []


def test_a_cancelled_run_stays_cancelled(task, schedule, clock, queue_name):
    def cancelled_meanwhile(ctx: JobContext, url: str = "", token: str = ""):
        JobRun.objects.filter(pk=ctx.run_id).update(status=Status.CANCELLED)
        raise ConnectionError("gone")

    failing = task(cancelled_meanwhile)
    message = message_for(failing, schedule, clock, queue_name)
    with pytest.raises(ConnectionError):
        deliver(failing, message, queue_name)
    [run] = JobRun.objects.filter(schedule=schedule)
    assert run.status == Status.CANCELLED and run.finished_at is None
    assert drain(queue_name, 0.5) == []  # and no retry


def test_the_sweep_publishes_a_retry_left_unpublished_only_once_due(
    task, schedule, clock, queue_name, monkeypatch
):
    failing = task(unreliable)
    message = message_for(failing, schedule, clock, queue_name)
    # The worker dies between committing the next attempt and publishing it.
    monkeypatch.setattr(claim_middleware, "publish", lambda *a, **k: None)
    with pytest.raises(ConnectionError):
        deliver(failing, message, queue_name)
    retry = JobRun.objects.get(schedule=schedule, attempt=2)
    assert retry.status == Status.PENDING and retry.next_attempt_at > clock.now()
    dispatcher = Dispatcher(current_app, clock)
    assert dispatcher.sweep(min_age=timedelta(0)) == 0  # not before its backoff
    clock.set(retry.next_attempt_at)
    assert dispatcher.sweep(min_age=timedelta(0)) == 1
    [(headers, _)] = drain(queue_name)
    assert headers["attempt_id"] == retry.pk and headers["trigger"] == "retry"


# --- log capture ---------------------------------------------------------------------------
def test_log_capture_is_bounded_and_takes_every_thread(task, clock, queue_name):
    chatty_task = task(chatty)
    deliver(chatty_task, ({"id": str(uuid.uuid4())}, {"lines": 800}), queue_name)
    run = JobRun.objects.get()
    lines = run.logs.splitlines()
    assert lines[0] == "[300 earlier line(s) not kept]" and len(lines) == 501
    assert all("jobs.tests.history.chatty: thread" in line for line in lines[1:])
    assert not logging.getLogger("jobs.tests.history.chatty").handlers  # detached


def test_secrets_are_masked_on_the_console_too(task, clock, queue_name, caplog):
    steady_task = task(steady)
    with caplog.at_level(logging.INFO):
        deliver(steady_task, ({"id": str(uuid.uuid4())}, {"token": SECRET}), queue_name)
    assert "with ********" in caplog.text and SECRET not in caplog.text


# --- the chain ---------------------------------------------------------------------------
def test_the_claim_refuses_to_start_without_the_masked_parameters(clock):
    job = Job(name="tests.history.unordered", func=steady, title="t")
    run = RunInfo(job=job, params={"token": SECRET}, context=JobContext(job=job.name))
    with pytest.raises(ImproperlyConfigured, match="Redaction must come before"):
        Claim(clock=clock).before_run(run)
    assert not JobRun.objects.exists() and calls == []


# --- overlap -------------------------------------------------------------------------------
def test_overlap_is_enforced_again_at_start(task, make_test_schedule, clock, queue_name):
    steady_task = task(steady)
    schedule = make_test_schedule(overlap_policy=OverlapPolicy.SKIP)
    headers, kwargs = message_for(steady_task, schedule, clock, queue_name)
    JobRun.objects.create(
        schedule=schedule,
        periodic_task=schedule.periodic_task,
        task_name=steady_task.name,
        scheduled_for=T0,
        status=Status.RUNNING,
    )
    deliver(steady_task, (headers, kwargs), queue_name)
    assert JobRun.objects.get(pk=headers["attempt_id"]).status == Status.SKIPPED
    assert calls == []


def test_a_retry_never_waits_longer_than_the_longest_job(
    task, schedule, clock, queue_name, settings
):
    # Its message waits unacknowledged; the broker's visibility timeout exceeds this ceiling.
    settings.JOBS_MAX_TIME_LIMIT = 3
    policy = RetryPolicy(max_attempts=2, backoff_base=3600, backoff_cap=3600, jitter=False)
    failing = task(unreliable, retry=policy)
    message = message_for(failing, schedule, clock, queue_name)
    with pytest.raises(ConnectionError):
        deliver(failing, message, queue_name)
    assert JobRun.objects.get(schedule=schedule, attempt=1).retry_delay == 3.0


@pytest.mark.parametrize(
    ("stored", "header", "named"),
    [
        # The job's cap (15 s) was lowered below the base the schedule sets: a row that
        # passes the database's checks and breaks the policy's rule.
        ({"retry_backoff_base": 600}, {}, "retry_backoff_base=600.0 (the schedule's)"),
        # A message sent with nonsense in its run layer.
        ({}, {"retry_backoff_base": "-5"}, "retry_backoff_base='-5' (the run's)"),
        ({}, {"retry_max_attempts": "many"}, "retry_max_attempts='many' (the run's)"),
    ],
)
def test_a_policy_that_cannot_be_resolved_fails_the_attempt_at_once(
    task, make_test_schedule, clock, queue_name, stored, header, named
):
    failing = task(unreliable)
    schedule = make_test_schedule()
    Schedule.objects.filter(pk=schedule.pk).update(**stored)
    headers, kwargs = message_for(failing, schedule, clock, queue_name)
    with pytest.raises(ConnectionError):  # the job's own error, nothing from the worker
        deliver(failing, ({**headers, **header}, kwargs), queue_name)
    run = JobRun.objects.get(pk=headers["attempt_id"])
    assert run.status == Status.FAILED and run.finished_at is not None
    assert run.error_type == "ConnectionError"
    assert run.note.startswith("not retried: invalid retry policy: ") and named in run.note
    assert not JobRun.objects.filter(occurrence=run).exists()  # no further attempt
    assert drain(queue_name, 0.5) == []
