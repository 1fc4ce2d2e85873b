"""Rewriting the secret values every schedule stores: sealing clear ones (the data migration),
sealing them under the first key (``manage.py rotate_secrets``), or opening them (the
migration's way back). A schedule's row and its cron entry's kwargs change together.

Works on the migration's historical models as on the real ones: both are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from jobs_catalog.registry import registry
from jobs_catalog.secrets import SecretError, is_sealed

#: (params, the secret fields) -> the params to store; raises SecretError.
Change = Callable[[dict[str, Any], Iterable[str]], dict[str, Any]]


@dataclass
class Rewritten:
    """What a pass did, by schedule name."""

    changed: list[str] = field(default_factory=list)
    #: Schedules whose job's code is not installed here: only their sealed values were
    #: handled (which of their clear values are secret is not known).
    unknown_job: list[str] = field(default_factory=list)
    #: "name: why" for schedules left unchanged because a secret could not be handled.
    failed: list[str] = field(default_factory=list)


def secret_fields_of(job_name: str, params: dict[str, Any]) -> frozenset[str]:
    """The job's secret fields, or, when its code is not installed, the sealed values' ones."""
    job = registry.find(job_name)
    if job is not None:
        return job.secret_fields
    return frozenset(name for name, value in params.items() if is_sealed(value))


def rewrite_schedules(
    change: Change,
    schedule_model: type[models.Model],
    task_model: type[models.Model],
    *,
    dry_run: bool = False,
) -> Rewritten:
    """Apply ``change`` to every schedule's parameters, each schedule in a transaction of
    its own under a row lock (an edit made meanwhile is not overwritten)."""
    outcome = Rewritten()
    for pk in schedule_model.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            schedule = schedule_model.objects.select_for_update().select_related("job").get(pk=pk)
            params = dict(schedule.params or {})
            if registry.find(schedule.job.name) is None:
                outcome.unknown_job.append(schedule.name)
            try:
                new = change(params, secret_fields_of(schedule.job.name, params))
            except SecretError as exc:
                outcome.failed.append(f"{schedule.name}: {exc}")
                continue
            if new == params:
                continue
            outcome.changed.append(schedule.name)
            if dry_run:
                continue
            schedule_model.objects.filter(pk=pk).update(params=new)
            if schedule.periodic_task_id is not None:
                task_model.objects.filter(pk=schedule.periodic_task_id).update(
                    kwargs=json.dumps(new)
                )
    return outcome
