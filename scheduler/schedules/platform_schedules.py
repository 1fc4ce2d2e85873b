"""Schedules the platform creates for itself: after ``migrate``, the daily pruning of the run
history, unless it exists already (then it is left as admins set it: paused, edited).

It runs on post_migrate, after the catalog's own post_migrate handler has mirrored the jobs
(the catalog app comes first in INSTALLED_APPS), and only once every migration is applied.
Set ``JOBS_HISTORY_PRUNE_CRON`` empty to create none.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from jobs_catalog.models import JobDefinition
from scheduler.schedules.models import OverlapPolicy, Schedule
from scheduler.schedules.periodic import save_schedule

logger = logging.getLogger(__name__)

#: The pruning job (defined in scheduler/jobs.py, with the run history it prunes).
PRUNE_JOB = "builtin.prune_run_history"
PRUNE_SCHEDULE_NAME = "Prune run history"
PRUNE_DESCRIPTION = (
    "Created by the platform: deletes old runs from the history (see the job's parameters; "
    "empty ones follow the JOBS_HISTORY_* settings). Pause it to keep everything; a deleted "
    "one is created again by the next migrate."
)


def ensure_prune_schedule(cron: str | None = None) -> Schedule | None:
    """Create the pruning schedule if no schedule of the pruning job exists. Returns the new
    schedule, or None when there was one already (or none is wanted)."""
    cron = settings.JOBS_HISTORY_PRUNE_CRON if cron is None else cron
    if not cron:
        return None
    definition = JobDefinition.objects.filter(name=PRUNE_JOB, available=True).first()
    if definition is None:
        logger.warning("%s is not in the catalog: no pruning schedule created", PRUNE_JOB)
        return None
    if Schedule.objects.filter(job=definition).exists():
        return None
    if Schedule.objects.filter(name=PRUNE_SCHEDULE_NAME).exists():
        logger.warning(
            "a schedule named %r runs another job: no pruning schedule created",
            PRUNE_SCHEDULE_NAME,
        )
        return None
    schedule = Schedule(
        name=PRUNE_SCHEDULE_NAME,
        description=PRUNE_DESCRIPTION,
        job=definition,
        cron=cron,
        timezone="UTC",
        params={},
        overlap_policy=OverlapPolicy.SKIP,  # two prunes at once would only contend
    )
    try:
        with transaction.atomic():
            return save_schedule(schedule)
    except IntegrityError:  # another process made it at the same moment
        return None
    except ValidationError as exc:
        logger.error("JOBS_HISTORY_PRUNE_CRON=%r: no pruning schedule created: %s", cron, exc)
        return None


def create_platform_schedules(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if using != DEFAULT_DB_ALIAS or not settings.JOBS_HISTORY_PRUNE_CRON:
        return
    executor = MigrationExecutor(connections[using])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return  # a partial migrate: the models may not match the tables yet
    ensure_prune_schedule()
