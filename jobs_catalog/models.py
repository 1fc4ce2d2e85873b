"""The catalog mirrored into the database, so schedules can hold a real foreign key and the
admin can list jobs. The code is the source of truth; this table follows it."""

from __future__ import annotations

from django.db import models


class JobDefinition(models.Model):
    name = models.CharField(max_length=200, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    params_schema = models.JSONField(default=dict, help_text="JSON Schema of the parameters.")
    defaults = models.JSONField(default=dict, help_text="Default parameter values.")
    retry_policy = models.JSONField(default=dict)
    soft_time_limit = models.PositiveIntegerField(null=True, blank=True)
    time_limit = models.PositiveIntegerField(null=True, blank=True)
    queue = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=300, help_text="Built-in, app or package.")
    module = models.CharField(max_length=300)
    available = models.BooleanField(
        default=True,
        help_text="Whether a live worker can run it (with no worker seen lately: whether its "
        "code is installed).",
    )
    unavailable_reason = models.TextField(blank=True)
    code_problem = models.TextField(
        blank=True,
        help_text="Why the last process that mirrored the catalog did not find the job's code; "
        "empty when it did.",
    )
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(help_text="Last time a process found this job in code.")
    changed_at = models.DateTimeField(help_text="Last time the definition changed.")

    class Meta:
        ordering = ["name"]
        verbose_name = "job"
        verbose_name_plural = "job catalog"

    def __str__(self) -> str:
        return f"{self.title} ({self.name})" if self.title != self.name else self.name


class CatalogWorker(models.Model):
    """What one live worker can run: the catalog jobs it loaded and why it refused others.
    Written by the worker at start and refreshed by its heartbeat; removed when it stops.
    Only about the catalog: whether a worker is alive for its runs is the scheduler's business.
    """

    hostname = models.CharField(max_length=255, unique=True, help_text="Celery node name.")
    loaded = models.JSONField(default=list, help_text="Names of the jobs it can run.")
    refused = models.JSONField(
        default=dict, help_text="Job name -> why this worker did not load it (its settings)."
    )
    broken_modules = models.JSONField(
        default=dict, help_text="Module -> why it failed to import on this worker."
    )
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["hostname"]
        verbose_name = "catalog of a worker"
        verbose_name_plural = "catalogs of workers"

    def __str__(self) -> str:
        return self.hostname

    def reason_missing(self, name: str, module: str) -> str:
        """Why this worker cannot run the job ``name`` (defined in ``module``)."""
        return (
            self.refused.get(name)
            or self.broken_modules.get(module)
            or "its code is not installed on this worker"
        )
