"""Start and stop real celery processes for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database this test runs on (the test database), for child processes."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    env.update(overrides)
    return env


def wait_for(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._handle = log.open("ab")
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so the pool children go with it
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30, times: int = 1) -> None:
        """Wait until ``text`` appears in the log ``times`` times; fail at once if the
        process exits meanwhile."""

        def seen() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited early:\n{self.output()[-3000:]}")
            return self.output().count(text) >= times

        try:
            wait_for(seen, timeout, f"{text!r} in {self.log.name}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log ---\n{self.output()[-3000:]}") from None

    def stop(self, timeout: float = 20, *, main_only: bool = False) -> int:
        """SIGTERM, then SIGKILL to the whole group after ``timeout``; the exit code.

        ``main_only``: SIGTERM to the main process alone, as systemd's ``KillMode=mixed``
        does (gunicorn and Celery stop their own children; a pool process signalled directly
        can die holding the pool's lock); what is left of the group is killed after it."""
        if self.popen.poll() is None:
            if main_only:
                self.popen.send_signal(signal.SIGTERM)
            else:
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
            if main_only:
                with contextlib.suppress(ProcessLookupError):  # every child left with it
                    os.killpg(self.popen.pid, signal.SIGKILL)
        self._handle.close()
        return self.popen.returncode


@contextmanager
def celery_worker(
    tmp_path: Path, env: dict[str, str], queues: str = "celery", concurrency: int = 1
) -> Iterator[Process]:
    name = f"w{uuid.uuid4().hex[:8]}@%h"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-l",
        "info",
        "-c",
        str(concurrency),
        "-Q",
        queues,
        "-n",
        name,
        "--without-mingle",
        "--without-gossip",
    ]
    worker = Process(args, env, tmp_path / f"worker-{name[:9]}.log")
    try:
        worker.wait_for_output("ready.", timeout=60)
        yield worker
    finally:
        worker.stop()


@contextmanager
def celery_beat(
    tmp_path: Path, env: dict[str, str], name: str = "beat", wait: bool = True
) -> Iterator[Process]:
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "beat",
        "-l",
        "info",
        "-S",
        "scheduler.beat:DatabaseScheduler",
        "--pidfile",
        str(tmp_path / f"{name}.pid"),
        "-s",
        str(tmp_path / f"{name}-schedule"),
    ]
    beat = Process(args, env, tmp_path / f"{name}.log")
    try:
        if wait:
            beat.wait_for_output("beat: Starting...", timeout=60)
            beat.wait_for_output("entries updated at start", timeout=60)
        yield beat
    finally:
        beat.stop()
