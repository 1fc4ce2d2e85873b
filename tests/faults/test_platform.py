"""The fault matrix's own servers: a platform on them runs a job, and the test reads its
history with the ORM while the suite's test database stays untouched."""

from __future__ import annotations

import pytest

from jobs_catalog.models import JobDefinition
from scheduler.runs.models import JobRun
from tests.faults.conftest import FAULT_MARKS

pytestmark = FAULT_MARKS


def test_the_test_process_reads_the_clusters_copy(fault_platform):
    from django.db import connection

    assert connection.settings_dict["PORT"] == fault_platform.postgres.port
    assert JobDefinition.objects.filter(name="tests.touch_file").exists()
    assert JobRun.objects.count() == 0


def test_a_stopped_cluster_comes_back(fault_platform):
    fault_platform.postgres.stop()
    fault_platform.reconnect()
    with pytest.raises(Exception):  # noqa: B017 - any database error: the server is down
        JobRun.objects.count()
    fault_platform.postgres.start()
    fault_platform.reconnect()
    assert JobRun.objects.count() == 0
