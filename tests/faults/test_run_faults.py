"""The fault matrix, run side: PostgreSQL down at a job's start and at its end, a whole worker
killed (noticed by its missing heartbeats), Redis restarted empty while a run waited queued,
and a task no worker knows. Each counts the job's real executions (lines it appends to a
file) against the history, and ends with nothing left running or queued."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.broker import transport_options
from jobs_catalog.models import JobDefinition
from scheduler.beat.dispatch import Dispatcher
from scheduler.beat.entries import reconcile
from scheduler.clock import SystemClock
from scheduler.runs.messages import Outgoing
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import Outbox
from scheduler.runs.publisher import send_all
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.faults.conftest import FAULT_MARKS
from tests.faults.matrix import assert_nothing_left_waiting, job_lines, scale, summary
from tests.scheduler.conftest import ManualClock
from tests.support.processes import celery_beat, celery_worker, wait_for

pytestmark = FAULT_MARKS
Status = JobRun.Status
#: Heartbeats every second, a worker silent for 5 s is dead (the defaults: 10 s and 60 s).
FAST_LIVENESS = {"SCHEDULER_WORKER_HEARTBEAT": "1", "SCHEDULER_WORKER_LOST_AFTER": "5"}


@pytest.fixture
def client(fault_platform):
    """A sender on the test's own Redis."""
    url = fault_platform.redis.url
    app = Celery("fault-client", broker=url, set_as_current=False)
    app.conf.broker_transport_options = transport_options(
        url, fault_platform.tmp_path / "data", max_time_limit=3600
    )
    app.conf.task_serializer = "json"
    yield app
    app.close()


class Holding:
    """A publisher that keeps the messages (the test sends them when it chooses)."""

    def __init__(self) -> None:
        self.messages: list[Outgoing] = []

    def submit(self, messages: list[Outgoing]) -> None:
        self.messages.extend(messages)

    def collect(self, timeout: float = 0.0) -> list[int]:
        return []

    def in_flight(self) -> set[int]:
        return set()

    def close(self) -> None:
        pass


def commit_run(platform, app: Celery, params: dict, publisher=None) -> JobRun:
    """Commit an occurrence of a schedule of tests.holds and publish it, as beat does."""
    schedule = Schedule(
        name=f"holds {uuid.uuid4().hex[:6]}",
        job=JobDefinition.objects.get(name="tests.holds"),
        cron="0 0 1 1 *",
        params=params,
        queue=platform.queue,
    )
    save_schedule(schedule)
    [run] = Outbox(app, SystemClock(), publisher=publisher).enqueue(
        schedule, [datetime.now(UTC).replace(microsecond=0)], JobRun.Trigger.MANUAL
    )
    return run


def status_of(run: JobRun) -> str | None:
    return JobRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()


def stopped_for_a_while(platform, worker, marker: str) -> None:
    """Stop the cluster, and start it again once the worker has hit the outage."""
    down = time.monotonic()
    platform.postgres.stop()
    platform.reconnect()
    worker.wait_for_output(marker, timeout=30)
    # The outage's length is the fault itself (bench.faults: 30 s), not a wait for a state.
    back = down + scale().outage
    wait_for(lambda: time.monotonic() >= back, scale().outage + 1, "the outage", poll=0.2)
    platform.postgres.start()
    platform.reconnect()


# --- PostgreSQL down ---------------------------------------------------------------------------
def test_postgres_down_at_a_jobs_end_records_it_once_and_runs_it_once(fault_platform, client):
    env = {**fault_platform.env, **FAST_LIVENESS}
    marker = fault_platform.tmp_path / "holds.txt"
    with (
        celery_beat(fault_platform.tmp_path, env),
        celery_worker(fault_platform.tmp_path, env, queues=fault_platform.queue) as worker,
    ):
        first = commit_run(fault_platform, client, {"path": str(marker), "hold": scale().job})
        wait_for(lambda: job_lines(marker), 30, "the job to start")
        # The job ends while the database is down: its end waits for it.
        stopped_for_a_while(fault_platform, worker, "not written (")
        wait_for(lambda: status_of(first) == Status.SUCCEEDED, 60, "the end to be recorded")
        # Watch for longer than the heartbeats' bound (no condition to wait for: what must
        # not happen is a rerun): the reaper in beat must leave a live worker's run alone.
        deadline = time.monotonic() + 8
        wait_for(lambda: time.monotonic() > deadline, 10, "the reaper's passes", poll=0.5)
    assert summary(first) == [(1, Status.SUCCEEDED)]
    assert job_lines(marker) == ["start attempt=1", "done attempt=1"]
    assert_nothing_left_waiting()


def test_postgres_down_at_a_jobs_start_runs_it_later_exactly_once(fault_platform, client):
    marker = fault_platform.tmp_path / "holds.txt"
    held = Holding()
    first = commit_run(fault_platform, client, {"path": str(marker), "hold": 0}, held)
    with celery_worker(
        fault_platform.tmp_path, fault_platform.env, queues=fault_platform.queue
    ) as worker:
        fault_platform.postgres.stop()
        fault_platform.reconnect()
        send_all(client, held.messages, [])  # delivered while the start cannot be written
        worker.wait_for_output("start not written (", timeout=30)
        assert job_lines(marker) == []  # the job waits: it never runs unrecorded
        fault_platform.postgres.start()
        fault_platform.reconnect()
        wait_for(lambda: status_of(first) == Status.SUCCEEDED, 60, "the run")
    assert summary(first) == [(1, Status.SUCCEEDED)]
    assert job_lines(marker) == ["start attempt=1", "done attempt=1"]
    assert_nothing_left_waiting()


# --- a whole worker killed -------------------------------------------------------------------
def test_a_killed_worker_is_noticed_by_its_missing_heartbeats(fault_platform, client):
    env = {**fault_platform.env, **FAST_LIVENESS}
    marker = fault_platform.tmp_path / "holds.txt"
    with celery_beat(fault_platform.tmp_path, env):
        with celery_worker(fault_platform.tmp_path, env, queues=fault_platform.queue) as doomed:
            first = commit_run(fault_platform, client, {"path": str(marker), "hold": 30})
            wait_for(lambda: job_lines(marker), 30, "the first attempt to start")
            os.killpg(doomed.popen.pid, signal.SIGKILL)
            doomed.popen.wait(10)
            killed = time.monotonic()
        # Its hard limit (60 s) plus the grace (60 s) is far off: only heartbeats tell.
        wait_for(lambda: status_of(first) == Status.LOST, 20, "the run marked lost")
        noticed = time.monotonic() - killed
        lost = JobRun.objects.get(pk=first.pk)
        assert "stopped sending heartbeats" in lost.error_message
        with celery_worker(fault_platform.tmp_path, env, queues=fault_platform.queue):
            wait_for(lambda: summary(first)[-1] == (2, Status.SUCCEEDED), 30, "the rerun")
    assert noticed < 5 + 1 + 3  # lost after 5 s, a pass every second, some slack
    assert summary(first) == [(1, Status.LOST), (2, Status.SUCCEEDED)]
    assert job_lines(marker) == ["start attempt=1", "start attempt=2", "done attempt=2"]
    assert_nothing_left_waiting()


# --- messages that vanish or that no worker can run ---------------------------------------------
def test_a_run_whose_message_redis_lost_is_republished_and_runs_once(fault_platform, client):
    env = {**fault_platform.env, "SCHEDULER_REPUBLISH_AFTER": "2"}
    marker = fault_platform.tmp_path / "holds.txt"
    with celery_beat(fault_platform.tmp_path, env):
        first = commit_run(fault_platform, client, {"path": str(marker), "hold": 0})
        assert status_of(first) == Status.QUEUED
        fault_platform.redis.restart()  # comes back empty: the message is gone
        with celery_worker(fault_platform.tmp_path, env, queues=fault_platform.queue):
            wait_for(lambda: status_of(first) == Status.SUCCEEDED, 40, "the republished run")
    run = JobRun.objects.get(pk=first.pk)
    assert run.republished >= 1
    assert summary(first) == [(1, Status.SUCCEEDED)]
    assert job_lines(marker) == ["start attempt=1", "done attempt=1"]
    assert_nothing_left_waiting()


def test_a_task_no_worker_knows_is_recorded_failed(fault_platform, client):
    now = datetime.now(UTC)
    clock = ManualClock(now - timedelta(seconds=11))
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="raw entry with a typo",
        task="tests.no_such_task",
        interval=every,
        kwargs=json.dumps({"x": 1}),
        queue=fault_platform.queue,
    )
    reconcile(clock.now())
    clock.set(now)
    assert Dispatcher(client, clock).run_due() == 1  # what beat does
    [run] = JobRun.objects.all()
    with celery_worker(fault_platform.tmp_path, fault_platform.env, queues=fault_platform.queue):
        wait_for(lambda: status_of(run) == Status.FAILED, 30, "the run recorded failed")
    run.refresh_from_db()
    assert run.error_type == "NotRegistered"
    assert run.error_message == "no worker knows task 'tests.no_such_task'"
    assert_nothing_left_waiting()
