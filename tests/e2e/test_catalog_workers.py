"""Two real workers with different JOBS_MAX_TIME_LIMIT: the catalog shows a job available while
a worker that can run it is live, whichever started last, and says why once none is."""

from __future__ import annotations

import os
import signal

import pytest

from jobs_catalog.models import CatalogWorker, JobDefinition
from tests.support.processes import celery_worker, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: Declares a 360 s time limit: above the strict worker's ceiling, within the permissive one's.
JOB = "builtin.http_request"
STRICT_LIMIT = "100"


def definition() -> JobDefinition:
    return JobDefinition.objects.get(name=JOB)


@pytest.fixture
def envs(platform):
    # A short heartbeat, so a killed worker is stale within about 1.5 s.
    common = {**platform.env, "JOBS_CATALOG_HEARTBEAT": "0.5"}
    return (
        {**common, "JOBS_MAX_TIME_LIMIT": "3600"},
        {**common, "JOBS_MAX_TIME_LIMIT": STRICT_LIMIT},
    )


def test_a_strict_worker_starting_last_does_not_hide_the_job(platform, envs, tmp_path):
    permissive_env, strict_env = envs
    with celery_worker(tmp_path, permissive_env, queues=platform.queue) as permissive:
        with celery_worker(tmp_path, strict_env, queues=platform.queue) as strict:
            assert f"JOBS_MAX_TIME_LIMIT ({STRICT_LIMIT}s)" in strict.output()
            assert CatalogWorker.objects.count() == 2
            assert definition().available, definition().unavailable_reason

            permissive.stop()  # a clean shutdown takes its catalog out at once

            reason = definition().unavailable_reason
            assert not definition().available
            assert f"asks for a 360s time limit, above JOBS_MAX_TIME_LIMIT ({STRICT_LIMIT}s)" in (
                reason
            )
            assert CatalogWorker.objects.count() == 1
    assert not CatalogWorker.objects.exists()


def test_a_killed_permissive_worker_stops_counting_once_its_heartbeat_is_stale(
    platform, envs, tmp_path
):
    permissive_env, strict_env = envs
    with celery_worker(tmp_path, permissive_env, queues=platform.queue) as permissive:
        with celery_worker(tmp_path, strict_env, queues=platform.queue):
            assert definition().available, definition().unavailable_reason

            os.killpg(permissive.popen.pid, signal.SIGKILL)  # no shutdown signal, no cleanup

            wait_for(lambda: not definition().available, 20, "the strict worker's heartbeat")
            assert "JOBS_MAX_TIME_LIMIT" in definition().unavailable_reason
            assert CatalogWorker.objects.count() == 2  # the dead one's row, stale
