"""An environment for real worker, beat and web processes: the test database, a broker (Redis
when REDIS_URL is set, else the filesystem broker), a queue of the test's own, and a file
clock. Only the child processes publish, so the test process needs no broker of its own."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scheduler.clock import FileClock
from tests.support.processes import child_env


@dataclass
class Platform:
    env: dict[str, str]
    queue: str
    clock_file: Path
    tmp_path: Path

    def set_time(self, when: datetime) -> None:
        FileClock.set(self.clock_file, when)


def new_platform(tmp_path: Path, prefix: str = "e2e") -> Platform:
    broker = os.environ.get("REDIS_URL") or "filesystem://"
    data_dir = tmp_path / "data"
    clock_file = tmp_path / "clock"
    env = child_env(
        CELERY_BROKER_URL=broker,
        DATA_DIR=str(data_dir),
        EXTRA_INSTALLED_APPS="tests.fixtures.sample_app",
        SCHEDULER_CLOCK=f"file:{clock_file}",
    )
    # The clock runs from now until a test moves it (workers read it to stamp runs).
    FileClock.set(clock_file, datetime.now(UTC))
    return Platform(env, f"{prefix}-{uuid.uuid4().hex[:10]}", clock_file, tmp_path)
