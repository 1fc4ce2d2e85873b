"""A RabbitMQ node of the test's own, killed and started again during a running job.

RabbitMQ keeps the job's persistent message and delivers it again (redelivered) as soon as
the worker reconnects, while the job still runs in the worker's other pool process. The
worker must drop that delivery (scheduler.runs.running_here): the job runs once, and its end is
recorded by the first delivery.
"""

from __future__ import annotations

from celery import Celery

from scheduler.runs.models import JobRun
from tests.faults.conftest import FAULT_MARKS
from tests.faults.matrix import (
    assert_nothing_left_waiting,
    assert_worker_survived,
    job_lines,
    summary,
)
from tests.support.processes import celery_worker, wait_for
from tests.support.runs import over, run_now
from tests.support.servers import rabbitmq_node

pytestmark = FAULT_MARKS
Status = JobRun.Status
#: Seconds the job runs: longer than a node's restart (about 10 s) plus the worker's
#: reconnect backoff (2, 4, 6 s...).
JOB_SECONDS = 25


def test_rabbitmq_restarted_during_a_running_job(fault_platform):
    platform = fault_platform
    marker = platform.tmp_path / "job.txt"
    with rabbitmq_node(platform.tmp_path / "rabbitmq") as node:
        sender = Celery("fault-sender", broker=node.url, set_as_current=False)
        sender.conf.task_serializer = "json"
        # Publisher confirms: the message is on the node's disk once sent, so the crash
        # cannot lose it before its first delivery is even written.
        sender.conf.broker_transport_options = {"confirm_publish": True}
        env = {**platform.env, "CELERY_BROKER_URL": node.url}
        try:
            with celery_worker(platform.tmp_path, env, queues=platform.queue, concurrency=2) as w:
                params = {"path": str(marker), "seconds": JOB_SECONDS}
                first = run_now(sender, platform.queue, "tests.long_append", params)
                wait_for(lambda: marker.exists(), 20, "the job to start")
                node.kill()
                w.wait_for_output("Connection to broker lost", 15)
                node.start()
                w.wait_for_output("] received", 60, times=2)  # the redelivery
                wait_for(
                    lambda: "done attempt=1" in job_lines(marker),
                    JOB_SECONDS + 30,
                    "the first delivery's end",
                )
                wait_for(lambda: over(first), 30, "the run's end in the history")
                assert_worker_survived(w)
        finally:
            sender.close()
    assert summary(first) == [(1, Status.SUCCEEDED)]
    assert job_lines(marker) == ["start attempt=1", "done attempt=1"]
    assert_nothing_left_waiting()
    assert "a redelivery after a broker reconnect" in w.output()  # why it was dropped
