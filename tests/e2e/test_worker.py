"""A real ``celery worker`` runs catalog jobs under their catalog names, on every broker the
platform supports: the embedded filesystem broker, Redis and RabbitMQ."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from celery import Celery

from config.broker import transport_options
from tests.support.processes import celery_worker, child_env, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BROKERS = [
    pytest.param("filesystem", id="filesystem"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("rabbitmq", id="rabbitmq", marks=pytest.mark.rabbitmq),
]


def broker_url(kind: str) -> str:
    return {
        "filesystem": "filesystem://",
        "redis": os.environ.get("REDIS_URL", ""),
        "rabbitmq": os.environ.get("RABBITMQ_URL", ""),
    }[kind]


@pytest.fixture(params=BROKERS)
def broker(request, tmp_path, monkeypatch):
    """(client app, child environment, queue): a sender and a worker environment on one
    broker, with a queue name of this test's own so leftovers of other runs cannot mix in."""
    url = broker_url(request.param)
    # Celery prefers this variable to the URL a client app is given.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    data_dir = tmp_path / "data"
    options = transport_options(url, data_dir, max_time_limit=3600)
    client = Celery("test-client", broker=url, set_as_current=False)
    client.conf.broker_transport_options = options
    client.conf.task_serializer = "json"
    env = child_env(
        CELERY_BROKER_URL=url,
        DATA_DIR=str(data_dir),
        EXTRA_INSTALLED_APPS="tests.fixtures.sample_app",
        JOBS_MAX_TIME_LIMIT="3600",
    )
    yield client, env, f"e2e-{uuid.uuid4().hex[:10]}"
    client.close()


def test_worker_runs_a_catalog_job_once_under_its_name(broker, tmp_path):
    client, env, queue = broker
    marker = tmp_path / "ran.txt"
    with celery_worker(tmp_path, env, queues=queue) as worker:
        assert "tests.touch_file" in worker.output()  # registered under its catalog name
        client.send_task("tests.touch_file", kwargs={"path": str(marker)}, queue=queue)
        wait_for(marker.exists, 30, "the job to write its marker")
        worker.wait_for_output("Task tests.touch_file[", timeout=10)
        worker.wait_for_output("succeeded", timeout=10)
    lines = marker.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("done ") and lines[0].endswith("attempt=1")


def test_the_workers_success_line_does_not_hold_the_whole_result(broker, tmp_path):
    client, env, queue = broker
    folder = tmp_path / ("d" * 200)
    folder.mkdir()
    marker = folder / ("m" * 200)  # the job returns {"path": <this path>}
    with celery_worker(tmp_path, env, queues=queue) as worker:
        client.send_task("tests.touch_file", kwargs={"path": str(marker)}, queue=queue)
        wait_for(marker.exists, 30, "the job to write its marker")
        worker.wait_for_output("succeeded in", timeout=10)
    [line] = [line for line in worker.output().splitlines() if "succeeded in" in line]
    assert str(marker) not in line and "characters)" in line
    assert len(line) < 500, line


def test_worker_refuses_parameters_that_fail_the_schema(broker, tmp_path):
    client, env, queue = broker
    marker = tmp_path / "never.txt"
    with celery_worker(tmp_path, env, queues=queue) as worker:
        client.send_task(
            "tests.touch_file", kwargs={"path": str(marker), "colour": "red"}, queue=queue
        )
        worker.wait_for_output("unexpected parameter", timeout=30)
    assert "job 'tests.touch_file': invalid parameters: colour" in worker.output()
    assert not Path(marker).exists()
