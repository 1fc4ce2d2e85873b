"""Redis down while a worker holds unacknowledged messages: during a running job, during a
retry's countdown, and while idle; Redis back empty (no persistence) or with its data (an
append-only file). The worker stays up, and every run completes once.

The worker runs two pool processes: with one busy, the other waits on Redis (BRPOP), which
is what made kombu's cleanup after a lost connection crash the worker (config.kombu_redis).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from config.broker import transport_options
from scheduler.runs.models import JobRun
from tests.faults.conftest import FAULT_MARKS, FaultPlatform
from tests.faults.matrix import (
    assert_nothing_left_waiting,
    assert_worker_survived,
    job_lines,
    summary,
)
from tests.faults.scale import scale
from tests.support.processes import Process, celery_beat, celery_worker, wait_for
from tests.support.runs import attempts, lines, over, run_now

pytestmark = FAULT_MARKS
Status = JobRun.Status
#: The longest job the workers here allow (tests.slow_append's hard limit)...
MAX_TIME_LIMIT = 6
#: ... which the visibility timeout must exceed: a message Redis kept unacknowledged is
#: delivered again this many seconds after its first delivery.
VISIBILITY = 8
LOST = "Connection to broker lost"
REFUSED = "Cannot connect to redis"
CONNECTED = "Connected to redis"


@pytest.fixture
def sender(fault_platform: FaultPlatform) -> Iterator[Celery]:
    url = fault_platform.redis.url
    app = Celery("fault-sender", broker=url, set_as_current=False)
    app.conf.broker_transport_options = transport_options(
        url, fault_platform.tmp_path, MAX_TIME_LIMIT, VISIBILITY
    )
    app.conf.task_serializer = "json"
    yield app
    app.close()


def worker(platform: FaultPlatform):
    env = {
        **platform.env,
        "JOBS_MAX_TIME_LIMIT": str(MAX_TIME_LIMIT),
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY),
    }
    return celery_worker(platform.tmp_path, env, queues=platform.queue, concurrency=2)


def outage(platform: FaultPlatform, worker: Process) -> None:
    """Kill Redis; start it again once the worker has failed to reconnect."""
    log = worker.output()
    losses, refusals, connects = log.count(LOST), log.count(REFUSED), log.count(CONNECTED)
    down = time.monotonic()
    platform.redis.kill()
    worker.wait_for_output(LOST, 15, times=losses + 1)
    worker.wait_for_output(REFUSED, 15, times=refusals + 1)
    # The outage's length is the fault itself (bench.faults: 30 s), not a wait for a state.
    back = down + scale().outage
    wait_for(lambda: time.monotonic() >= back, scale().outage + 1, "the outage", poll=0.2)
    platform.redis.start()
    worker.wait_for_output(CONNECTED, 30, times=connects + 1)


def assert_still_consuming(platform: FaultPlatform, sender: Celery) -> None:
    """A job sent after the outage runs once."""
    marker = platform.tmp_path / "after.txt"
    after = run_now(sender, platform.queue, "tests.slow_append", {"path": str(marker)})
    wait_for(lambda: over(after), 30, "a job sent after the outage")
    assert [r.status for r in attempts(after)] == [Status.SUCCEEDED]
    assert lines(marker)[1:] == ["done attempt=1"]


def started(marker, attempt: int):
    return lambda: any(line.startswith(f"start attempt={attempt} ") for line in lines(marker))


# --- (a) during a running job -----------------------------------------------------------------
@pytest.mark.parametrize("persistent", [False, True], ids=["back-empty", "back-with-data"])
def test_redis_down_during_a_running_job(fault_platform, sender, persistent):
    platform = fault_platform
    if persistent:
        platform.redis.persistent = True
        platform.redis.restart()
    marker = platform.tmp_path / "job.txt"
    with worker(platform) as w:
        first = run_now(
            sender, platform.queue, "tests.slow_append", {"path": str(marker), "seconds": 3}
        )
        wait_for(started(marker, 1), 20, "the job to start")
        outage(platform, w)
        # The job went on to its end: its outcome is in the database, which needs no broker.
        wait_for(lambda: over(first), 30, "the job's end")
        if persistent:
            # Its message, never acknowledged (the channel that could ack it is gone), stays
            # in Redis and is delivered again after the visibility timeout: dropped.
            wait_for(
                lambda: "already succeeded: duplicate delivery" in w.output(), 30, "redelivery"
            )
        assert_still_consuming(platform, sender)
        assert_worker_survived(w)
    assert summary(first) == [(1, Status.SUCCEEDED)]
    assert job_lines(marker) == [
        "start attempt=1",
        "done attempt=1",
    ]
    assert_nothing_left_waiting()


# --- (b) during a retry's countdown -----------------------------------------------------------
def cut_during_countdown(
    platform: FaultPlatform, sender: Celery, w: Process, marker: Path
) -> JobRun:
    """Send a job whose attempt 1 fails; cut Redis while the worker holds attempt 2's
    message, waiting out its 4 s countdown."""
    params = {"path": str(marker), "fail_first": True}
    first = run_now(sender, platform.queue, "tests.slow_append", params)
    wait_for(lambda: len(attempts(first)) == 2, 20, "attempt 1 to fail")
    w.wait_for_output("] received", 20, times=2)  # attempt 2's message, held
    outage(platform, w)
    return first


def test_redis_down_during_a_retry_countdown_back_with_data(fault_platform, sender):
    """The countdown's message, held unacknowledged by the worker, is kept by Redis; the
    worker loses it with its connection, and gets it again after the visibility timeout."""
    platform = fault_platform
    platform.redis.persistent = True
    platform.redis.restart()
    marker = platform.tmp_path / "retry.txt"
    with worker(platform) as w:
        first = cut_during_countdown(platform, sender, w, marker)
        wait_for(lambda: over(first), 40, "attempt 2's end")
        assert_still_consuming(platform, sender)
        assert_worker_survived(w)
    assert summary(first) == [(1, Status.RETRYING), (2, Status.SUCCEEDED)]
    assert job_lines(marker) == [
        "start attempt=1",
        "start attempt=2",
        "done attempt=2",
    ]
    assert_nothing_left_waiting()


def test_redis_down_during_a_retry_countdown_back_empty(fault_platform, sender):
    """Redis comes back without the countdown's message: the worker stays up and runs
    nothing twice; attempt 2, left queued with no message to deliver it, is republished by
    beat's outbox once it is late, and runs once."""
    platform = fault_platform
    marker = platform.tmp_path / "retry.txt"
    with worker(platform) as w:
        first = cut_during_countdown(platform, sender, w, marker)
        # The message is gone with Redis's data: neither in a queue nor unacknowledged.
        client = redis.Redis.from_url(platform.redis.url)
        assert client.llen(platform.queue) == 0 and client.hlen("unacked") == 0
        client.close()
        [one, two] = attempts(first)
        assert (one.status, two.status) == (Status.RETRYING, Status.QUEUED)
        env = {**platform.env, "SCHEDULER_REPUBLISH_AFTER": "2"}
        with celery_beat(platform.tmp_path, env):
            wait_for(lambda: over(first), 40, "attempt 2, republished, to end")
        assert_still_consuming(platform, sender)
        assert_worker_survived(w)
    assert summary(first) == [(1, Status.RETRYING), (2, Status.SUCCEEDED)]
    assert job_lines(marker) == [
        "start attempt=1",
        "start attempt=2",
        "done attempt=2",
    ]
    assert_nothing_left_waiting()


# --- (c) while idle ---------------------------------------------------------------------------
def test_redis_down_while_the_worker_is_idle(fault_platform, sender):
    platform = fault_platform
    with worker(platform) as w:
        outage(platform, w)
        assert_still_consuming(platform, sender)
        assert_worker_survived(w)
    assert_nothing_left_waiting()
