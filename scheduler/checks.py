"""``manage.py check`` (and every management command) refuses bad history settings with a
clear message."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from scheduler import cron


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
