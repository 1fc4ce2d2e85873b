"""With ``SENTRY_DSN`` set, sentry-sdk's Celery integration reports a failing job's exception
itself. Tagging the run's scope (Celery runs each task in its own isolation scope) gives those
events the job, schedule and run, and the same per-schedule fingerprint as the Sentry
channel's events, so all of one schedule's failures group into one issue. No I/O."""

from __future__ import annotations

import sentry_sdk

from scheduler.alerts.channels.sentry import fingerprint
from scheduler.models import JobRun


def tag_run(run: JobRun) -> None:
    scope = sentry_sdk.get_isolation_scope()
    scope.set_tag("job", run.task_name)
    scope.set_tag("schedule_id", str(run.schedule_id))
    scope.set_tag("run_id", str(run.pk))
    scope.fingerprint = fingerprint(run.schedule_id, "failed")
