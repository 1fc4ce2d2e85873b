"""The run history (one row per attempt) and the workers' heartbeats."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduler.formatting import format_time
from scheduler.schedules.models import Schedule


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
        API = "api", "API / application"

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
    #: How far the job says it got: {"done", "total", "message", "at"} (``ctx.progress``).
    progress = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "run"
        verbose_name_plural = "run history"
        ordering = ["-scheduled_for", "-id"]
        permissions = [
            ("retry_run", "Can retry a run"),
            ("cancel_run", "Can cancel a run"),
            ("trigger_job", "Can run a catalog job with parameters (API, trigger())"),
        ]
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
            # The overview's rollup reads the runs that ended since it last ran.
            models.Index(
                fields=["finished_at"], name="run_finished", condition=Q(finished_at__isnull=False)
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
        return f"{self.task_name} @ {format_time(self.scheduled_for)}{suffix}"

    @property
    def first_attempt_id(self) -> int:
        """The id that stands for this attempt's occurrence (see :func:`first_attempt_id`)."""
        return first_attempt_id(self.occurrence_id, self.pk)


#: SQL over a run's row: :func:`first_attempt_id`, for statements that return or match it.
FIRST_ATTEMPT_ID_SQL = "COALESCE(occurrence_id, id)"


def first_attempt_id(occurrence_id: int | None, attempt_id: int | None) -> int | None:
    """The id of an occurrence's first attempt, which stands for the occurrence: a later
    attempt names it (``occurrence_id``); the first one's is empty, and it is its own."""
    return occurrence_id or attempt_id


def attempts_of(first_id: int) -> Q:
    """The attempts of the occurrence whose first attempt is ``first_id``."""
    return Q(pk=first_id) | Q(occurrence_id=first_id)


def status_label(status: str | None) -> str:
    """ "Pending (committed, not yet published)" -> "Pending"."""
    if not status:
        return "-"
    try:
        return str(JobRun.Status(status).label).split(" (")[0]
    except ValueError:
        return status


class RunRequest(models.Model):
    """A run asked for by an application (the API, ``trigger()``), not by a schedule: who
    asked, the message to send (secret values sealed: it is published, and published again
    after a crash, from here), and what the request named (idempotency key, callback)."""

    run = models.OneToOneField(
        JobRun, on_delete=models.CASCADE, primary_key=True, related_name="request"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    #: A client's key for "this very request": sent again, it finds this run.
    idempotency_key = models.CharField(max_length=200, blank=True)
    #: A keyed digest of the validated parameters (tells a retried request from another one).
    params_digest = models.CharField(max_length=64, blank=True)
    #: The task's keyword arguments as sent: secret values sealed.
    kwargs = models.JSONField(default=dict)
    callback_url = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "run request"
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="runrequest_idempotency",
            )
        ]

    def __str__(self) -> str:
        return f"request of run {self.run_id}"


# Worker liveness: each worker's main process stamps its row every few seconds, so beat's
# reaper can tell a run whose worker is alive (leave it: the worker kills a job at its hard
# limit itself) from one whose worker died (lost, rerun).
class WorkerHeartbeat(models.Model):
    #: Celery's node name (``worker@host``), as stored in ``JobRun.worker_host``.
    hostname = models.CharField(max_length=255, unique=True)
    pid = models.PositiveIntegerField()
    #: When this incarnation of the worker started: a run started before it belongs to an
    #: earlier one (restarted under the same name), which is gone.
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "worker heartbeat"

    def __str__(self) -> str:
        return f"{self.hostname} (pid {self.pid}, seen {self.last_seen_at:%H:%M:%S})"


# The overview's pre-aggregated history: runs that ended in an hour, by job and outcome.
class RunHour(models.Model):
    """Runs that ended within ``hour`` for one job and outcome, with their durations (counts
    per bucket of ``scheduler.runs.rollup.DURATION_BOUNDS``) and dispatch lag. A few rows per
    job and hour, so a week of charts reads thousands of rows, not millions of runs."""

    hour = models.DateTimeField()
    task_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16)
    runs = models.PositiveIntegerField(default=0)
    duration_sum = models.FloatField(default=0)
    durations = models.JSONField(default=list)
    lag_sum = models.FloatField(default=0)
    lag_max = models.FloatField(null=True)
    lag_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "run hour"
        constraints = [
            models.UniqueConstraint(fields=["hour", "task_name", "status"], name="runhour_key")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.task_name} {self.status}: {self.runs}"


class RollupMark(models.Model):
    """How far the rollup has read: runs that ended before ``rolled_until`` are counted."""

    name = models.CharField(max_length=50, primary_key=True)
    rolled_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.rolled_until:%Y-%m-%d %H:%M:%S}"
