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
        default=True, help_text="False when the job's code is no longer installed or loads."
    )
    unavailable_reason = models.TextField(blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(help_text="Last time a process found this job in code.")
    changed_at = models.DateTimeField(help_text="Last time the definition changed.")

    class Meta:
        ordering = ["name"]
        verbose_name = "job"
        verbose_name_plural = "job catalog"

    def __str__(self) -> str:
        return f"{self.title} ({self.name})" if self.title != self.name else self.name
