"""The fault matrix's platform: real worker and beat processes on a PostgreSQL cluster and a
Redis server that the test owns (started here on free ports, stopped, killed and restarted by
the test), never the machine's own services.

The cluster is started once per session and migrated once into a template database; each test
gets a fresh copy of it. While a test runs, Django's default connection in the test process
points at that copy, so the test creates schedules and reads the history with the ORM as any
other test does; afterwards it points back at the suite's test database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connections

from scheduler.clock import FileClock
from tests.faults.matrix import write_row
from tests.support.processes import child_env
from tests.support.servers import PostgresCluster, RedisServer, postgres_cluster

TEMPLATE = "platform_template"
SAMPLE_APP = "tests.fixtures.sample_app"


#: What every module of the fault matrix is marked with: the test process talks to the
#: cluster through the suite's PostgreSQL backend, so it needs DATABASE_URL on PostgreSQL.
FAULT_MARKS = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.e2e]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Every row of the matrix, held or not, goes to ``FAULTS_REPORT`` for bench.faults."""
    result = yield
    if call.when == "call":
        failure = str(call.excinfo.value).splitlines()[0][:200] if call.excinfo else ""
        write_row(item.name, result.passed, failure or "failed")
    return result


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        cluster.create_database(TEMPLATE)
        cluster.migrate(TEMPLATE, EXTRA_INSTALLED_APPS=SAMPLE_APP)
        yield cluster


@dataclass
class FaultPlatform:
    """A platform on servers of the test's own. ``env`` is for worker and beat processes."""

    env: dict[str, str]
    queue: str
    clock_file: Path
    tmp_path: Path
    postgres: PostgresCluster
    database: str
    redis: RedisServer

    def set_time(self, when: datetime) -> None:
        FileClock.set(self.clock_file, when)

    def reconnect(self) -> None:
        """Drop the test process's connections (after the cluster was stopped)."""
        _close(connections["default"])


def _close(conn) -> None:
    conn.close()
    if conn.settings_dict.get("OPTIONS", {}).get("pool"):
        conn.close_pool()


@pytest.fixture
def fault_platform(
    request, tmp_path, own_postgres, transactional_db, monkeypatch
) -> Iterator[FaultPlatform]:
    database = f"fault_{uuid.uuid4().hex[:12]}"
    url = own_postgres.create_database(database, template=TEMPLATE)
    redis = RedisServer(tmp_path)
    redis.start()
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    clock_file = tmp_path / "clock"
    FileClock.set(clock_file, datetime.now(UTC))
    env = child_env(
        DATABASE_URL=url,
        CELERY_BROKER_URL=redis.url,
        DATA_DIR=str(tmp_path / "data"),
        EXTRA_INSTALLED_APPS=SAMPLE_APP,
        SCHEDULER_CLOCK=f"file:{clock_file}",
    )
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    _close(conn)
    conn.settings_dict.update(
        NAME=database, HOST="127.0.0.1", PORT=own_postgres.port, USER="postgres", PASSWORD=""
    )
    try:
        yield FaultPlatform(
            env,
            f"fault-{uuid.uuid4().hex[:8]}",
            clock_file,
            tmp_path,
            own_postgres,
            database,
            redis,
        )
    finally:
        _close(conn)
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)
        redis.kill()
        own_postgres.start_if_stopped()
        own_postgres.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
