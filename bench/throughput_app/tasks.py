"""Plain Celery no-op tasks, and the completion counter every case's worker runs.

Each pool process keeps ``first-start last-end count`` in a file of its own under
``BENCH_COUNT_DIR``, rewritten in place after every task (one ``pwrite``, a few µs), so the
benchmark sees when the last run finished without a result backend.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import shared_task
from celery.signals import task_postrun, task_prerun


@shared_task(name="bench.noop", ignore_result=True)
def noop(n: int = 0) -> None:
    return None


@shared_task(name="bench.noop_stored", ignore_result=False)
def noop_stored(n: int = 0) -> None:
    return None


class _Counter:
    def __init__(self) -> None:
        self.fd: int | None = None
        self.pid = 0
        self.first = 0.0
        self.count = 0

    def start(self, **_: Any) -> None:
        if self.pid != os.getpid():  # first task in this pool process
            directory = os.environ.get("BENCH_COUNT_DIR")
            if not directory:
                return
            self.pid = os.getpid()
            self.fd = os.open(f"{directory}/{self.pid}", os.O_WRONLY | os.O_CREAT, 0o644)
            self.first = time.time()
            self.count = 0

    def end(self, **_: Any) -> None:
        if self.fd is None:
            return
        self.count += 1
        line = f"{self.first:.6f} {time.time():.6f} {self.count}\n".ljust(48)
        os.pwrite(self.fd, line.encode(), 0)


_counter = _Counter()
task_prerun.connect(_counter.start, weak=False)
task_postrun.connect(_counter.end, weak=False)
