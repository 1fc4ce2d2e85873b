"""The run history with real ``celery worker`` processes: a worker killed with SIGKILL mid-run
(the pool child, and the whole worker) on Redis and on RabbitMQ leaves a lost attempt and a
rerun, nothing lost and nothing run twice; retries with backoff; soft and hard time limits;
log capture and secret masking; plain django-celery-beat entries recorded."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.broker import transport_options
from jobs_catalog.secrets import is_sealed, new_key
from scheduler.beat.dispatch import Dispatcher
from scheduler.beat.entries import reconcile
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from tests.scheduler.conftest import ManualClock
from tests.support.processes import celery_worker, child_env, wait_for
from tests.support.runs import attempts, lines, over, run_now

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status
SECRET = "k3y-that-must-not-leak"
#: The Redis crash test redelivers after this many seconds (the visibility timeout), which
#: must exceed the longest time limit allowed (JOBS_MAX_TIME_LIMIT): there, 4 s.
VISIBILITY = 5

BROKERS = [
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("rabbitmq", id="rabbitmq", marks=pytest.mark.rabbitmq),
]


class Broker:
    """A sender and a worker environment on one broker, with a queue of the test's own."""

    def __init__(self, kind: str, tmp_path: Path, max_time_limit: int = 10, **env: str):
        self.kind = kind
        url = os.environ.get("REDIS_URL" if kind == "redis" else "RABBITMQ_URL", "")
        if kind == "filesystem":
            url = "filesystem://"
        data_dir = tmp_path / "data"
        self.client = Celery("test-client", broker=url, set_as_current=False)
        visibility = VISIBILITY if max_time_limit < VISIBILITY else max_time_limit + 600
        options = transport_options(url, data_dir, max_time_limit, visibility)
        self.client.conf.broker_transport_options = options
        self.client.conf.task_serializer = "json"
        self.queue = f"e2e-{uuid.uuid4().hex[:10]}"
        self.env = child_env(
            CELERY_BROKER_URL=url,
            DATA_DIR=str(data_dir),
            EXTRA_INSTALLED_APPS="tests.fixtures.sample_app",
            JOBS_MAX_TIME_LIMIT=str(max_time_limit),
            CELERY_VISIBILITY_TIMEOUT=str(visibility),
            **env,
        )
        self.tmp_path = tmp_path

    def worker(self, concurrency: int = 1):
        return celery_worker(self.tmp_path, self.env, queues=self.queue, concurrency=concurrency)

    def run_now(self, job: str, params: dict, **schedule_fields) -> JobRun:
        """Commit an occurrence of a schedule of ``job`` and publish it, as beat does."""
        return run_now(self.client, self.queue, job, params, **schedule_fields)


@pytest.fixture
def broker(request, tmp_path, monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery prefers it to the URL
    made: list[Broker] = []

    def make(kind: str, **options) -> Broker:
        made.append(Broker(kind, tmp_path, **options))
        return made[-1]

    yield make
    for each in made:
        each.client.close()


def summary(first: JobRun) -> list[tuple[int, str, str]]:
    return [(r.attempt, r.status, r.trigger) for r in attempts(first)]


# --- crash safety ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BROKERS)
def test_a_pool_child_killed_mid_run_is_lost_and_rerun_once(broker, kind):
    b = broker(kind)
    marker = b.tmp_path / "crashable.txt"
    with b.worker() as worker:
        first = b.run_now("tests.crashable", {"path": str(marker)})
        wait_for(lambda: lines(marker), 30, "the first attempt to start")
        child = JobRun.objects.get(pk=first.pk).worker_pid
        assert child and child != worker.popen.pid
        os.kill(child, signal.SIGKILL)
        # The main process notices a dead child within 5 s (billiard's maintain_pool).
        wait_for(lambda: over(first), 30, "the rerun")
    assert summary(first) == [(1, "lost", "manual"), (2, "succeeded", "retry")]
    lost, rerun = attempts(first)
    assert "redelivered" in lost.error_message and lost.finished_at <= rerun.started_at
    found = lines(marker)
    assert [line.split(" pid=")[0] for line in found] == [
        "start attempt=1",
        "start attempt=2",
        "done attempt=2",
    ]
    assert found[0].endswith(f"pid={child}") and f"pid={child}" not in found[1]


@pytest.mark.parametrize("kind", BROKERS)
def test_a_whole_worker_killed_mid_run_is_lost_and_rerun_by_the_next(broker, kind):
    b = broker(kind, max_time_limit=4)
    marker = b.tmp_path / "crashable.txt"
    with b.worker() as doomed:
        first = b.run_now("tests.crashable_briefly", {"path": str(marker)})
        wait_for(lambda: lines(marker), 30, "the first attempt to start")
        os.killpg(doomed.popen.pid, signal.SIGKILL)
        doomed.popen.wait(10)
    started = JobRun.objects.get(pk=first.pk)
    assert started.status == Status.RUNNING  # nobody could record anything
    if kind == "redis":
        # Redis gives an unacknowledged message back after the visibility timeout, counted
        # from its delivery; a new worker looks when it starts.
        delivered = started.started_at.timestamp()
        time.sleep(max(0.0, delivered + VISIBILITY + 0.5 - time.time()))
    with b.worker():
        wait_for(lambda: over(first), 40, "the rerun")
    assert summary(first) == [(1, "lost", "manual"), (2, "succeeded", "retry")]
    assert [line.split(" pid=")[0] for line in lines(marker)] == [
        "start attempt=1",
        "start attempt=2",
        "done attempt=2",
    ]


# --- retries, logs, secrets ---------------------------------------------------------------------
def test_retries_back_off_and_the_history_keeps_logs_without_secrets(broker):
    b = broker("redis" if os.environ.get("REDIS_URL") else "filesystem")
    marker = b.tmp_path / "flaky.txt"
    with b.worker() as worker:
        first = b.run_now("tests.flaky", {"path": str(marker), "api_key": SECRET})
        failing = b.run_now(
            "tests.fails_until_file",
            {"ok_file": str(b.tmp_path / "never"), "token": SECRET},
            retry_max_attempts=1,
        )
        wait_for(lambda: over(first) and over(failing), 30, "the third attempt")
    # Nor do the worker's logs show it: the job's own lines, and Celery's line about the
    # failure (logged after the job returned), are masked too.
    output = worker.output()
    assert "attempt 1 of 4 with key ********" in output
    assert "service refused token ********" in output
    assert SECRET not in output
    runs = attempts(first)
    assert [(r.attempt, r.status, r.max_attempts) for r in runs] == [
        (1, "retrying", 4),
        (2, "retrying", 4),
        (3, "succeeded", 4),
    ]
    for earlier, later in itertools.pairwise(runs):
        assert 0 <= earlier.retry_delay <= 0.5
        assert later.started_at >= earlier.next_attempt_at  # not before its backoff
        assert (later.trigger, later.scheduled_for) == ("retry", first.scheduled_for)
    assert lines(marker) == ["attempt=1", "attempt=2", "attempt=3"]
    assert runs[0].error_message == "upstream refused key ********"
    assert "ConnectionError: upstream refused key ********" in runs[0].traceback
    assert "attempt 1 of 4 with key ********" in runs[0].logs
    assert "tests.fixtures.sample_app.jobs: module logger line, attempt 1" in runs[0].logs
    assert runs[2].result == "{'attempt': 3, 'key': '********'}"
    for run in runs:
        assert run.params["api_key"] == "********" and run.worker_pid and run.worker_host
        assert SECRET not in json.dumps([run.result, run.error_message, run.traceback, run.logs])


def test_json_logs_name_the_run_on_every_line_it_writes_and_mask_its_secrets(broker):
    b = broker("redis" if os.environ.get("REDIS_URL") else "filesystem", LOG_FORMAT="json")
    marker = b.tmp_path / "flaky.txt"
    with b.worker() as worker:
        first = b.run_now("tests.flaky", {"path": str(marker), "api_key": SECRET, "succeed_on": 1})
        wait_for(lambda: over(first), 30, "the run")
    output = worker.output()
    assert SECRET not in output
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    run = JobRun.objects.get(pk=first.pk)
    ids = {
        "run_id": run.pk,
        "schedule_id": run.schedule_id,
        "job": "tests.flaky",
        "task_id": str(run.task_id),
    }
    own = [r for r in records if "with key" in r["message"] or "module logger" in r["message"]]
    assert [r["message"] for r in own] == [
        "attempt 1 of 4 with key ********",
        "module logger line, attempt 1",
    ]
    for record in own:
        assert {name: record.get(name) for name in ids} == ids
        assert record["level"] in ("INFO", "WARNING") and record["time"]
    # Lines written outside the run carry no run fields.
    ready = [r for r in records if r["message"].endswith("ready.")]
    assert ready and "run_id" not in ready[0]


def test_the_job_gets_the_clear_secret_that_is_stored_and_sent_sealed(broker):
    b = broker("redis" if os.environ.get("REDIS_URL") else "filesystem")
    seen = b.tmp_path / "seen.txt"
    with b.worker() as worker:
        first = b.run_now("tests.uses_secret", {"path": str(seen), "token": SECRET})
        wait_for(lambda: over(first), 30, "the retried run")
    # Beat's message and the retry the worker sent both carried it sealed; the job saw it
    # in clear each time.
    assert lines(seen) == [f"attempt=1 token={SECRET}", f"attempt=2 token={SECRET}"]
    assert summary(first) == [(1, "retrying", "manual"), (2, "succeeded", "retry")]
    schedule = Schedule.objects.get(pk=first.schedule_id)
    assert is_sealed(schedule.params["token"])
    assert SECRET not in schedule.periodic_task.kwargs + worker.output()


def test_a_worker_without_the_key_fails_the_attempt_clearly_and_at_once(broker):
    b = broker(
        "redis" if os.environ.get("REDIS_URL") else "filesystem",
        SECRETS_ENCRYPTION_KEYS=new_key(),  # not the key this process seals with
    )
    seen = b.tmp_path / "seen.txt"
    with b.worker():
        first = b.run_now("tests.uses_secret", {"path": str(seen), "token": SECRET})
        wait_for(lambda: over(first), 30, "the failed run")
    [run] = attempts(first)  # not retried, not left running
    assert (run.status, run.error_type) == ("failed", "jobs_catalog.secrets.SecretError")
    assert "secret parameter 'token': none of the keys opens its stored value" in (
        run.error_message
    )
    assert not seen.exists()  # the job never ran


# --- time limits ------------------------------------------------------------------------------
def test_soft_and_hard_time_limits_are_recorded_as_timed_out(broker):
    b = broker("redis" if os.environ.get("REDIS_URL") else "filesystem")
    soft_marker, hard_marker = b.tmp_path / "soft.txt", b.tmp_path / "hard.txt"
    with b.worker(concurrency=2):
        soft = b.run_now("tests.cleanup_on_soft_limit", {"path": str(soft_marker)})
        hard = b.run_now("tests.ignores_soft_limit", {"path": str(hard_marker)})
        wait_for(lambda: over(soft) and over(hard), 30, "both limits")
    soft, hard = JobRun.objects.get(pk=soft.pk), JobRun.objects.get(pk=hard.pk)
    assert (soft.status, hard.status) == ("timed_out", "timed_out")
    # The soft limit lets the job clean up; it is not retried.
    assert lines(soft_marker) == ["cleaned up"] and "soft time limit: cleaning up" in soft.logs
    assert soft.error_type.endswith("SoftTimeLimitExceeded") and soft.attempt == 1
    # The hard limit kills the process: recorded by the worker's main process.
    assert lines(hard_marker) == ["started", "ignored the soft limit"]
    assert hard.error_type == "TimeLimitExceeded" and "hard time limit" in hard.error_message
    assert hard.duration > 1.9 and attempts(hard) == [hard]


# --- plain django-celery-beat entries ------------------------------------------------------------
def test_plain_periodic_task_runs_are_recorded(broker):
    b = broker("redis" if os.environ.get("REDIS_URL") else "filesystem")
    now = datetime.now(UTC)
    clock = ManualClock(now - timedelta(seconds=11))
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    for name, kwargs in (("ok", {"password": SECRET}), ("bad", {"fail": True})):
        PeriodicTask.objects.create(
            name=f"plain {name}",
            task="tests.plain_add",
            interval=every,
            args=json.dumps([2, 3]),
            kwargs=json.dumps(kwargs),
            queue=b.queue,
        )
    reconcile(clock.now())
    clock.set(now)
    assert Dispatcher(b.client, clock).run_due() == 2  # what beat does
    with b.worker():
        wait_for(
            lambda: set(JobRun.objects.values_list("status", flat=True)) == {"succeeded", "failed"},
            30,
            "both plain runs",
        )
    ok = JobRun.objects.get(periodic_task__name="plain ok")
    bad = JobRun.objects.get(periodic_task__name="plain bad")
    assert (ok.task_name, ok.args, ok.params, ok.result) == (
        "tests.plain_add",
        [2, 3],
        {"password": "********"},
        "5",
    )
    assert "adding 2 and 3" in ok.logs and ok.worker_pid and ok.duration is not None
    assert (bad.error_type, bad.error_message) == ("ValueError", "cannot add 2 and 3")
    assert "Traceback" in bad.traceback and bad.finished_at >= bad.started_at
    assert timedelta(0) <= ok.started_at - ok.published_at < timedelta(seconds=30)
