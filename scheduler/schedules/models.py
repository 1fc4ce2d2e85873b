"""A schedule: a catalog job on a cron, with its parameters and policies."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django_celery_beat.models import PeriodicTask

from jobs_catalog.models import JobDefinition
from jobs_catalog.retry import MAX_ATTEMPTS, MAX_BACKOFF
from scheduler.clock import get_clock
from scheduler.policies import misfire, overlap
from scheduler.policies.misfire import MisfirePolicy
from scheduler.policies.overlap import OverlapPolicy
from scheduler.schedules.rules import MAX_CATCHUP_RUNS, MAX_CATCHUP_WINDOW, MAX_JITTER, field_errors

#: The policies' values with the admin's words for them (the policies live in scheduler.policies).
OVERLAP_CHOICES = [(p.value, overlap.LABELS[p]) for p in OverlapPolicy]
MISFIRE_CHOICES = [(p.value, misfire.LABELS[p]) for p in MisfirePolicy]


def _backoff_range(field: str, what: str) -> models.CheckConstraint:
    # NaN passes "> 0" on PostgreSQL but fails "<=": the upper bound keeps it out.
    return models.CheckConstraint(
        condition=Q(**{f"{field}__isnull": True})
        | Q(**{f"{field}__gt": 0, f"{field}__lte": MAX_BACKOFF}),
        name=f"schedule_{field}_range",
        violation_error_message=(
            f"The backoff {what} must be more than 0 and at most {MAX_BACKOFF:g} seconds."
        ),
    )


class Schedule(models.Model):
    """A catalog job on a cron, with its parameters and policies. It owns a django-celery-beat
    ``PeriodicTask`` + ``CrontabSchedule`` kept in step in the same transaction."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    job = models.ForeignKey(JobDefinition, on_delete=models.PROTECT, related_name="schedules")
    params = models.JSONField(default=dict, blank=True)
    cron = models.CharField(max_length=120, help_text="minute hour day-of-month month weekday")
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    pause_note = models.TextField(blank=True)
    start_at = models.DateTimeField(null=True, blank=True, help_text="Not before this time.")
    end_at = models.DateTimeField(null=True, blank=True, help_text="Not after this time.")
    overlap_policy = models.CharField(
        max_length=16, choices=OVERLAP_CHOICES, default=OverlapPolicy.ALLOW
    )
    misfire_policy = models.CharField(
        max_length=16, choices=MISFIRE_CHOICES, default=MisfirePolicy.RUN_ONCE
    )
    catchup_window = models.PositiveIntegerField(
        default=3600, help_text="Seconds: missed occurrences older than this are not run."
    )
    max_catchup_runs = models.PositiveIntegerField(
        default=10, help_text="With 'run each missed occurrence': the most to run."
    )
    jitter = models.PositiveIntegerField(
        default=0, help_text="Seconds: at most this much later, the same offset every time."
    )
    queue = models.CharField(max_length=200, blank=True, help_text="Overrides the job's queue.")
    retry_max_attempts = models.PositiveSmallIntegerField(null=True, blank=True)
    retry_backoff_base = models.FloatField(null=True, blank=True)
    retry_backoff_cap = models.FloatField(null=True, blank=True)
    periodic_task = models.OneToOneField(
        PeriodicTask,
        on_delete=models.CASCADE,
        null=True,
        editable=False,
        related_name="managed_schedule",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        # The overview's "paused" panel, newest first, without reading every schedule.
        indexes = [
            models.Index(
                fields=["-paused_at"],
                name="schedule_paused",
                condition=Q(paused_at__isnull=False),
            )
        ]
        permissions = [
            ("run_schedule", "Can run a schedule now or backfill it"),
            ("pause_schedule", "Can pause and resume a schedule"),
        ]
        # The last line of defence behind clean() (scheduler.schedules.rules), which says more.
        constraints = [
            models.CheckConstraint(
                condition=Q(retry_max_attempts__isnull=True)
                | Q(retry_max_attempts__gte=1, retry_max_attempts__lte=MAX_ATTEMPTS),
                name="schedule_retry_max_attempts_range",
                violation_error_message=f"Retry attempts must be between 1 and {MAX_ATTEMPTS}.",
            ),
            _backoff_range("retry_backoff_base", "base"),
            _backoff_range("retry_backoff_cap", "cap"),
            models.CheckConstraint(
                condition=Q(retry_backoff_base__isnull=True)
                | Q(retry_backoff_cap__isnull=True)
                | Q(retry_backoff_cap__gte=F("retry_backoff_base")),
                name="schedule_retry_backoff_cap_above_base",
                violation_error_message="The backoff cap must be at least the backoff base.",
            ),
            models.CheckConstraint(
                condition=Q(jitter__lte=MAX_JITTER),
                name="schedule_jitter_range",
                violation_error_message=f"The jitter must be at most {MAX_JITTER} seconds.",
            ),
            models.CheckConstraint(
                condition=Q(
                    catchup_window__gte=F("jitter"), catchup_window__lte=MAX_CATCHUP_WINDOW
                ),
                name="schedule_catchup_window_range",
                violation_error_message=(
                    "The catch-up window must be at least the jitter and at most "
                    f"{MAX_CATCHUP_WINDOW} seconds."
                ),
            ),
            models.CheckConstraint(
                condition=Q(max_catchup_runs__gte=1, max_catchup_runs__lte=MAX_CATCHUP_RUNS),
                name="schedule_max_catchup_runs_range",
                violation_error_message=(
                    f"The most catch-up runs must be between 1 and {MAX_CATCHUP_RUNS}."
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Validate the schedule's own fields (``scheduler.schedules.rules``); the job's
        parameters are checked by ``scheduler.schedules.periodic.clean_schedule``."""
        errors = field_errors(self, get_clock().now())
        if errors:
            raise ValidationError(errors)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def is_active(self) -> bool:
        return self.enabled and not self.is_paused


class LoadForecast(models.Model):
    """When the enabled schedules are due over the next day, counted per bin, and the
    instants where many are due in the same second (``scheduler.schedules.forecast``):
    recomputed now and then, read by the overview in one row."""

    name = models.CharField(max_length=50, primary_key=True)
    computed_at = models.DateTimeField()
    start = models.DateTimeField()
    bin_seconds = models.PositiveIntegerField()
    bins = models.JSONField(default=list)
    peaks = models.JSONField(default=list)
    schedules = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} forecast from {self.start:%Y-%m-%d %H:%M}"
