"""Queues the runs of one ``bench.run_throughput`` case, as a client would:

    python -m bench.run_throughput_queue {bare|django-celery-results|ours} N QUEUE

``ours`` goes through the platform (a schedule of the no-op catalog job, its runs committed
as JobRun rows, then published); the others are plain ``send_task`` over one producer.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

CHUNK = 1000


def main() -> int:
    case, runs, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    import django

    django.setup()
    from config.celery import app

    if case == "ours":
        queue_runs(app, runs, queue)
        return 0
    task = {"bare": "bench.noop", "django-celery-results": "bench.noop_stored"}[case]
    with app.producer_or_acquire() as producer:
        for i in range(runs):
            app.send_task(task, kwargs={"n": i}, queue=queue, producer=producer)
    return 0


def queue_runs(app, runs: int, queue: str) -> None:
    from jobs_catalog.models import JobDefinition
    from scheduler.beat.dispatch import Dispatcher
    from scheduler.clock import SystemClock
    from scheduler.runs.models import JobRun
    from scheduler.schedules.models import Schedule
    from scheduler.schedules.periodic import save_schedule

    schedule = save_schedule(
        Schedule(
            name="bench no-op",
            job=JobDefinition.objects.get(name="bench.noop_job"),
            params={"n": 1},
            cron="* * * * *",
            queue=queue,
            enabled=False,  # beat is not running; its runs are queued here
        )
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(runs)]
    dispatcher = Dispatcher(app, SystemClock())
    for i in range(0, runs, CHUNK):
        dispatcher.outbox.enqueue(schedule, times[i : i + CHUNK], JobRun.Trigger.BACKFILL)
    queued = JobRun.objects.filter(schedule=schedule, status=JobRun.Status.QUEUED).count()
    if queued != runs:
        raise SystemExit(f"queued {queued} runs, expected {runs}")


if __name__ == "__main__":
    sys.exit(main())
