"""Mirror the in-code catalog into :class:`JobDefinition` rows.

Any process describes the jobs it found in code (a job its own settings refuse included); none
decides alone whether a job can run: that is :mod:`jobs_catalog.availability`, from what the
live workers reported."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs_catalog.availability import refresh_availability
from jobs_catalog.definition import Job
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import Registry
from jobs_catalog.registry import registry as default_registry

logger = logging.getLogger(__name__)

#: Fields that describe a job; a change in any of them bumps ``changed_at``.
DESCRIPTIVE_FIELDS = (
    "title",
    "description",
    "params_schema",
    "defaults",
    "retry_policy",
    "soft_time_limit",
    "time_limit",
    "queue",
    "source",
    "module",
    "code_problem",
)


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.created)} new, {len(self.updated)} changed, "
            f"{len(self.unavailable)} newly unavailable"
        )


def definition_values(job: Job) -> dict[str, Any]:
    return {
        "title": job.title,
        "description": job.description,
        "params_schema": job.params_schema(),
        "defaults": job.mask(job.defaults()),
        "retry_policy": job.retry.to_dict(),
        "soft_time_limit": job.soft_time_limit,
        "time_limit": job.time_limit,
        "queue": job.queue or "",
        "source": job.source,
        "module": job.module,
        "code_problem": "",
    }


def sync_job_definitions(
    registry: Registry = default_registry, using: str = "default"
) -> SyncReport:
    """Create or update the rows so they describe the catalog in code, note the jobs whose
    code this process did not find, then refresh availability. Safe to run from several
    processes at once."""
    report = SyncReport()
    now = timezone.now()
    broken = registry.broken_modules()
    with transaction.atomic(using=using):
        existing = {d.name: d for d in JobDefinition.objects.using(using).select_for_update()}
        new_rows = []
        for job in registry.described():
            values = definition_values(job)
            row = existing.get(job.name)
            if row is None:
                new_rows.append(
                    JobDefinition(name=job.name, last_seen=now, changed_at=now, **values)
                )
                report.created.append(job.name)
            elif any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                row.last_seen = row.changed_at = now
                row.save(using=using)
                report.updated.append(job.name)
            else:
                row.last_seen = now
                row.save(using=using, update_fields=["last_seen"])
        JobDefinition.objects.using(using).bulk_create(new_rows, ignore_conflicts=True)
        described = {job.name for job in registry.described()}
        for name, row in existing.items():
            if name in described:
                continue
            problem = broken.get(row.module)
            code_problem = problem.message if problem else "its code is no longer installed"
            if row.code_problem != code_problem:
                row.code_problem = code_problem
                row.save(using=using, update_fields=["code_problem"])
        report.unavailable = refresh_availability(now, using=using)
    if report.created or report.updated or report.unavailable:
        logger.info("job catalog synced: %s", report)
    return report
