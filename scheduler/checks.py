"""``manage.py check`` (and every management command) refuses bad history, misfire and
Sentry settings with a clear message."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from scheduler.policies import cron


@checks.register("scheduler")
def history_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    expr = settings.JOBS_HISTORY_PRUNE_CRON
    if expr:
        try:
            cron.parse(expr)
        except cron.CronError as exc:
            errors.append(
                checks.Error(
                    f"JOBS_HISTORY_PRUNE_CRON={expr!r} is not a cron expression: {exc}",
                    hint="Five fields, e.g. '17 3 * * *' (UTC); empty: no pruning schedule.",
                    id="scheduler.E001",
                )
            )
    if settings.JOBS_HISTORY_RETENTION_DAYS < 1:
        errors.append(
            checks.Error(
                f"JOBS_HISTORY_RETENTION_DAYS={settings.JOBS_HISTORY_RETENTION_DAYS} must be "
                "at least 1.",
                id="scheduler.E002",
            )
        )
    if settings.JOBS_HISTORY_KEEP_PER_SCHEDULE < 0:
        errors.append(
            checks.Error(
                f"JOBS_HISTORY_KEEP_PER_SCHEDULE={settings.JOBS_HISTORY_KEEP_PER_SCHEDULE} "
                "cannot be negative.",
                id="scheduler.E003",
            )
        )
    return errors


@checks.register("scheduler")
def misfire_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    grace, window = settings.SCHEDULER_MISFIRE_GRACE, settings.SCHEDULER_CATCHUP_WINDOW
    if 1 <= grace <= window:
        return []
    return [
        checks.Error(
            f"SCHEDULER_MISFIRE_GRACE={grace} must be at least 1 second and at most "
            f"SCHEDULER_CATCHUP_WINDOW ({window}).",
            hint="Seconds an occurrence may be sent late before it counts as a misfire; "
            "a catch-up window shorter than it would drop late occurrences unseen.",
            id="scheduler.E004",
        )
    ]


@checks.register("scheduler")
def sentry_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The ``before_send`` hook is imported only at Sentry's first event (config/ imports no
    app): a wrong path is named here, at start, rather than dropping every event."""
    path = settings.SENTRY_BEFORE_SEND
    try:
        hook = import_string(path)
    except ImportError as exc:
        problem = f"cannot be imported: {exc}"
    else:
        if callable(hook):
            return []
        problem = "is not callable"
    return [
        checks.Error(
            f"SENTRY_BEFORE_SEND={path!r} {problem}",
            hint="A dotted path to a function (event, hint) -> event or None.",
            id="scheduler.E005",
        )
    ]
