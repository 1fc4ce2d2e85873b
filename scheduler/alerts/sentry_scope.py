"""With ``SENTRY_DSN`` set, sentry-sdk's Celery integration reports a failing job's exception
itself. Tagging the run's scope (Celery runs each task in its own isolation scope) gives those
events the job, schedule and run, and the same per-schedule fingerprint as the Sentry
channel's events, so all of one schedule's failures group into one issue. No I/O."""

from __future__ import annotations

import sentry_sdk

from scheduler.alerts.channels.sentry import fingerprint


def tag_run(task_name: str, schedule_id: int, run_id: int) -> None:
    scope = sentry_sdk.get_isolation_scope()
    scope.set_tag("job", task_name)
    scope.set_tag("schedule_id", str(schedule_id))
    scope.set_tag("run_id", str(run_id))
    scope.fingerprint = fingerprint(schedule_id, "failed")
