"""One celery beat (or the plain ``send_task`` baseline) with the publish time of every message
logged, for ``bench.beat_dispatch``.

    python -m bench.beat_runner beat --scheduler scheduler.beat:DatabaseScheduler --log F
    python -m bench.beat_runner raw --count 5000 --rounds 3 --queue bench_beat --log F

Each published message adds one tab-separated line to the log: task id, the ``scheduled_for``
header (empty when the scheduler sends none), the ``periodic_task_name`` header, and the
publish time (``time.time()``, taken in Celery's ``after_task_publish`` signal). Lines are
buffered and written by a background thread every ``FLUSH_EVERY`` seconds and at exit, so the
disk is never touched on the publishing path.

The environment configures Django and Celery as usual (``DATABASE_URL``,
``CELERY_BROKER_URL``, ``SECRET_KEY``). ``BENCH_PROFILE=/path`` runs beat under cProfile and
writes the stats there at exit.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: Seconds between writes of buffered publish lines.
FLUSH_EVERY = 0.25


class PublishLog:
    """Collects one line per published message and writes them from a background thread."""

    def __init__(self, path: Path):
        self.path = path
        self._pending: collections.deque[str] = collections.deque()
        self._file = path.open("a", encoding="utf-8")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish-log", daemon=True)

    def start(self) -> None:
        from celery.signals import after_task_publish

        after_task_publish.connect(self.record, weak=False)
        self._thread.start()
        # Beat's publisher processes are forked: each logs what it sends, on its own thread,
        # and writes the rest when it exits.
        os.register_at_fork(after_in_child=self._in_child)

    def _in_child(self) -> None:
        from multiprocessing import util

        self._pending = collections.deque()
        self._file = self.path.open("a", encoding="utf-8")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publish-log", daemon=True)
        self._thread.start()
        util.Finalize(self, self.close, exitpriority=10)

    def record(self, sender: Any = None, headers: dict | None = None, **kwargs: Any) -> None:
        published = time.time()
        headers = headers or {}
        self._pending.append(
            f"{headers.get('id', '')}\t{headers.get('scheduled_for') or ''}\t"
            f"{headers.get('periodic_task_name') or ''}\t{published:.6f}\n"
        )

    def flush(self) -> None:
        pending = self._pending
        lines = []
        while pending:
            lines.append(pending.popleft())
        if lines:
            self._file.write("".join(lines))
            self._file.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        self._file.close()


def _scheduler_class(path: str, ready: Path | None, ready_at: str) -> type:
    """``path``'s scheduler, writing the time it became ready to ``ready``: after its first
    tick began (``tick-start``: setup already loaded everything) or ended (``tick-end``: the
    first tick loads the schedule, as django-celery-beat's does)."""
    from celery.utils.imports import symbol_by_name

    base = symbol_by_name(path)
    if ready is None:
        return base

    def tick(self: Any, *args: Any, **kwargs: Any) -> float:
        if self._bench_ready:
            return base.tick(self, *args, **kwargs)
        started = time.time()
        try:
            return base.tick(self, *args, **kwargs)
        finally:
            self._bench_ready = True
            moment = started if ready_at == "tick-start" else time.time()
            scratch = ready.with_suffix(".tmp")
            scratch.write_text(f"{moment:.6f}\n")
            os.replace(scratch, ready)

    return type(base.__name__, (base,), {"tick": tick, "_bench_ready": False})


def _setup() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from config.celery import app

    return app


def run_beat(args: argparse.Namespace, log: PublishLog) -> None:
    app = _setup()
    scheduler = _scheduler_class(args.scheduler, args.ready, args.ready_at)
    beat = app.Beat(
        scheduler=scheduler,
        loglevel=args.loglevel,
        schedule=str(args.state),
        max_interval=args.max_interval,
    )
    profile_path = os.environ.get("BENCH_PROFILE")
    if not profile_path:
        beat.run()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        beat.run()
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


def run_raw(args: argparse.Namespace, log: PublishLog) -> None:
    """``send_task`` in a loop over one producer: what one process can publish at best. The
    messages look like the schedulers' (same queue, kwargs and headers of a similar size)."""
    app = _setup()
    scheduled = "2026-01-01T00:00:00+00:00"

    def send(producer: Any, count: int, prefix: str) -> None:
        for i in range(count):
            app.send_task(
                "bench.noop",
                args=[],
                kwargs={"n": i},
                queue=args.queue,
                producer=producer,
                headers={
                    "periodic_task_name": f"{prefix}-{i:06d}",
                    "occurrence_id": i,
                    "scheduled_for": scheduled,
                    "trigger": "beat",
                },
            )

    with app.producer_or_acquire() as producer:
        send(producer, args.warmup, "warmup")  # connection set up, queue declared
        for round_ in range(args.rounds):
            send(producer, args.count, f"raw{round_}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.beat_runner")
    sub = parser.add_subparsers(dest="mode", required=True)
    beat = sub.add_parser("beat", help="run celery beat")
    beat.add_argument("--scheduler", required=True, help="scheduler class, module:Name")
    beat.add_argument("--log", type=Path, required=True, help="publish log (appended)")
    beat.add_argument("--ready", type=Path, help="file to write once the scheduler is ready")
    beat.add_argument("--ready-at", choices=("tick-start", "tick-end"), default="tick-end")
    beat.add_argument("--state", type=Path, default=Path("celerybeat-schedule"))
    beat.add_argument("--loglevel", default="WARNING")
    beat.add_argument("--max-interval", type=float, default=None)
    raw = sub.add_parser("raw", help="publish with plain send_task, for the baseline")
    raw.add_argument("--count", type=int, default=5_000, help="messages per round")
    raw.add_argument("--rounds", type=int, default=3)
    raw.add_argument("--warmup", type=int, default=500)
    raw.add_argument("--queue", required=True)
    raw.add_argument("--log", type=Path, required=True)
    args = parser.parse_args(argv)

    log = PublishLog(args.log)
    log.start()
    try:
        (run_beat if args.mode == "beat" else run_raw)(args, log)
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
