"""What an operator does from ``manage.py shell`` on a deployed platform, for the deploy smoke
test: a schedule of a catalog job, run now through the platform's own run-now function (the
admin's *Run now* calls it), and the end of that run awaited. Prints one JSON line.

    python manage.py shell -c "from tests.support.shell_run_now import main; main(...)"
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from jobs_catalog.models import JobDefinition
from scheduler.runs.actions import run_now
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule

FINAL = (JobRun.Status.SUCCEEDED, JobRun.Status.FAILED, JobRun.Status.TIMED_OUT)


def main(job: str, params: dict[str, Any], timeout: float = 60.0) -> None:
    schedule = Schedule(
        name=f"Smoke {job} {uuid.uuid4().hex[:6]}",
        job=JobDefinition.objects.get(name=job),
        cron="0 0 1 1 *",  # never by itself during the test: only run now
        params=params,
    )
    save_schedule(schedule)
    run = run_now(schedule)
    queued = run.status
    deadline = time.monotonic() + timeout
    while run.status not in FINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        run.refresh_from_db()
    report = {"run": run.pk, "queued": queued, "status": run.status, "worker": run.worker_host}
    print(json.dumps({**report, "error": f"{run.error_type}: {run.error_message}".strip(": ")}))
