"""Schedules, the beat's index over every cron entry, the run history, and the change journal."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs_catalog.models import JobDefinition
from jobs_catalog.retry import MAX_ATTEMPTS, MAX_BACKOFF

#: Seconds: the most jitter (spreading a schedule's start over more than a day is no jitter).
MAX_JITTER = 86400
#: Seconds: the longest catch-up window (a month of missed occurrences).
MAX_CATCHUP_WINDOW = 31 * 86400
#: The most missed occurrences one catch-up may run (beat looks at the last thousand).
MAX_CATCHUP_RUNS = 1000


class OverlapPolicy(models.TextChoices):
    ALLOW = "allow", "Allow: start every occurrence"
    SKIP = "skip", "Skip while a run is still going"
    BUFFER_ONE = "buffer_one", "Buffer one: at most one waits for the running one"


class MisfirePolicy(models.TextChoices):
    RUN_ONCE = "run_once", "Run once for all missed occurrences (within the catch-up window)"
    SKIP = "skip", "Skip to the next occurrence"
    RUN_ALL = "run_all", "Run each missed occurrence within the window (capped)"


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
        max_length=16, choices=OverlapPolicy.choices, default=OverlapPolicy.ALLOW
    )
    misfire_policy = models.CharField(
        max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE
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
        permissions = [
            ("run_schedule", "Can run a schedule now or backfill it"),
            ("pause_schedule", "Can pause and resume a schedule"),
        ]
        # The last line of defence behind clean() (scheduler.schedule_rules), which says more.
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
        """Validate the schedule's own fields (``scheduler.schedule_rules``); the job's
        parameters are checked by ``scheduler.periodic.clean_schedule``."""
        from scheduler.clock import get_clock
        from scheduler.schedule_rules import field_errors

        errors = field_errors(self, get_clock().now())
        if errors:
            raise ValidationError(errors)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    @property
    def is_active(self) -> bool:
        return self.enabled and not self.is_paused


class BeatEntry(models.Model):
    """The beat's index over every ``PeriodicTask``: when it is next due. Found by an indexed
    ``due_at``, so beat never scans all entries."""

    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, primary_key=True, related_name="beat_entry"
    )
    #: The next occurrence's scheduled time (what the run history calls "scheduled for").
    next_fire_at = models.DateTimeField(null=True)
    #: When beat should publish it: ``next_fire_at`` plus the schedule's jitter offset.
    #: NULL while the entry is disabled, expired or finished.
    due_at = models.DateTimeField(null=True)
    last_fire_at = models.DateTimeField(null=True)
    #: A digest of everything that shapes the timing; a change means "recompute".
    signature = models.CharField(max_length=64, blank=True)
    enabled = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "beat entries"
        indexes = [
            models.Index(fields=["due_at"], name="beatentry_due", condition=Q(due_at__isnull=False))
        ]


class JobRun(models.Model):
    """One execution attempt: the run history.

    The first attempt of an occurrence is committed by beat before it is published (the
    outbox) and is unique per (task, scheduled time), so an occurrence runs exactly once.
    A retry is a further row pointing at the first attempt (``occurrence``), with the next
    attempt number. Rows beat decided not to run (missed, skipped) are recorded too.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (committed, not yet published)"
        QUEUED = "queued", "Queued"
        BUFFERED = "buffered", "Buffered (waits for the running one)"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RETRYING = "retrying", "Failed, will retry"
        TIMED_OUT = "timed_out", "Timed out"
        LOST = "lost", "Lost (worker gone)"
        SKIPPED = "skipped", "Skipped"
        MISSED = "missed", "Missed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        BEAT = "beat", "Beat"
        MANUAL = "manual", "Run now"
        BACKFILL = "backfill", "Backfill"
        RETRY = "retry", "Retry"
        CLI = "cli", "Command line"
        DIRECT = "direct", "Direct call"

    #: Counted by the overlap policy: the occurrence is still to run or running.
    ACTIVE = (Status.PENDING, Status.QUEUED, Status.BUFFERED, Status.RUNNING)
    #: Ended badly; what alerts and the "recent failures" view look at.
    FAILURES = (Status.FAILED, Status.TIMED_OUT, Status.LOST)
    #: Nothing more will happen to the attempt.
    FINISHED = (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.RETRYING,
        Status.TIMED_OUT,
        Status.LOST,
        Status.SKIPPED,
        Status.MISSED,
        Status.CANCELLED,
    )

    periodic_task = models.ForeignKey(
        PeriodicTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    # Indexed by run_schedule_recent and run_active, which lead with it (every index is
    # written on every start and end of a run: none that another one covers).
    schedule = models.ForeignKey(
        Schedule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        db_index=False,
    )
    #: The first attempt of this occurrence; empty on the first attempt itself.
    occurrence = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="retries",
        db_index=False,  # run_retries: later attempts only
    )
    #: The catalog job's name, or the Celery task name of a plain entry.
    task_name = models.CharField(max_length=200)
    scheduled_for = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.BEAT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveSmallIntegerField(default=1)
    max_attempts = models.PositiveSmallIntegerField(default=1)
    note = models.TextField(blank=True)
    task_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    queue = models.CharField(max_length=200, blank=True)
    #: Parameters as run, secret fields masked (catalog jobs); args/kwargs for plain tasks.
    params = models.JSONField(default=dict, blank=True)
    args = models.JSONField(default=list, blank=True)
    #: Set from the scheduler's clock (not auto_now), so injected time stays consistent.
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    #: Times beat's sweep published it again because it stayed queued (its message lost).
    republished = models.PositiveSmallIntegerField(default=0, db_default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: Seconds from start to finish, and from publish to start.
    duration = models.FloatField(null=True, blank=True)
    queue_wait = models.FloatField(null=True, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    #: A retried attempt: the backoff chosen and when the next attempt is due.
    retry_delay = models.FloatField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True, help_text="A bounded summary of the return value.")
    error_type = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    logs = models.TextField(blank=True, help_text="The job's log lines (bounded).")

    class Meta:
        verbose_name = "run"
        verbose_name_plural = "run history"
        ordering = ["-scheduled_for", "-id"]
        permissions = [("retry_run", "Can retry a run"), ("cancel_run", "Can cancel a run")]
        constraints = [
            models.UniqueConstraint(
                fields=["periodic_task", "scheduled_for"],
                condition=Q(attempt=1),
                name="run_once_per_occurrence",
            )
        ]
        indexes = [
            # The outbox: committed but not yet published.
            models.Index(
                fields=["created_at"], name="run_unpublished", condition=Q(status="pending")
            ),
            # Overlap checks: a schedule's active runs.
            models.Index(
                fields=["schedule", "status"],
                name="run_active",
                condition=Q(status__in=["pending", "queued", "buffered", "running"]),
            ),
            # A schedule's recent runs; every run in a time range; one job's runs.
            models.Index(fields=["schedule", "-scheduled_for", "-id"], name="run_schedule_recent"),
            models.Index(fields=["-scheduled_for", "-id"], name="run_recent"),
            models.Index(fields=["task_name", "-scheduled_for"], name="run_task_recent"),
            # The history list filtered by status (a rare one, say "lost", is otherwise found
            # by reading the time index until a page of it turns up).
            models.Index(fields=["status", "-scheduled_for", "-id"], name="run_status_recent"),
            # Recent failures.
            models.Index(
                fields=["-finished_at"],
                name="run_failures",
                condition=Q(status__in=["failed", "timed_out", "lost"]),
            ),
            # Runs still running (the reaper, the "running now" view).
            models.Index(fields=["started_at"], name="run_running", condition=Q(status="running")),
            # Retention: the oldest first.
            models.Index(fields=["created_at"], name="run_created"),
            # An occurrence's later attempts. First attempts (nearly every row) have no
            # entry, so starting and ending them costs no write here.
            models.Index(
                fields=["occurrence"], name="run_retries", condition=Q(occurrence__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        suffix = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        return f"{self.task_name} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S%z}{suffix}"

    @property
    def occurrence_id_or_self(self) -> int:
        """The id that groups every attempt of this occurrence."""
        return self.occurrence_id or self.pk


class BeatChange(models.Model):
    """Change journal over django-celery-beat's tables, written by database triggers, so an
    edit made anywhere (admin, ORM ``save``, ``QuerySet.update``, ``bulk_create``, raw SQL) is
    seen by beat, which reads only what is new."""

    source = models.CharField(max_length=16)  # task, crontab, interval, clocked, solar
    row_id = models.BigIntegerField()
    #: PostgreSQL transaction id, for reading in commit-safe order (see scheduler.changes).
    xid = models.BigIntegerField(null=True)
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["xid"], name="beatchange_xid")]


# Alerting's models live in their own module; imported here so Django finds them.
from scheduler.alert_models import (  # noqa: E402
    AlertChannel,
    AlertDelivery,
    AlertPolicy,
    Incident,
    WatchdogLease,
)
from scheduler.heartbeat_models import WorkerHeartbeat  # noqa: E402

__all__ = [
    "AlertChannel",
    "AlertDelivery",
    "AlertPolicy",
    "BeatChange",
    "BeatEntry",
    "Incident",
    "JobRun",
    "MisfirePolicy",
    "OverlapPolicy",
    "Schedule",
    "WatchdogLease",
    "WorkerHeartbeat",
]
