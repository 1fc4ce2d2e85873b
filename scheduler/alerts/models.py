"""Alerting's tables: where alerts go (channels), what a schedule overrides (its alert policy),
what went wrong (incidents), each message sent or tried (deliveries), each completion
callback sent or tried, and the watchdog's lease.

Imported by :mod:`scheduler.models`, so Django finds them in the app's models module.
Incidents and deliveries keep run ids as plain numbers, not foreign keys: the run history's
pruning deletes runs with a plain DELETE, which a foreign key from here would forbid.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from scheduler.schedules.models import Schedule


class AlertChannel(models.Model):
    """A destination for alerts. Its URL, signing secret and DSN are secrets: the admin never
    shows them, and no alert or delivery record contains them."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"
        SENTRY = "sentry", "Sentry"

    class Format(models.TextChoices):
        JSON = "json", "JSON (the alert's fields)"
        SLACK = "slack", "Slack-compatible (text and blocks)"

    #: Fields never shown back, logged or put in an alert.
    SECRET_FIELDS = ("url", "signing_secret", "sentry_dsn")

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        "default channel",
        default=False,
        help_text="Schedules that pick no channel send to every default channel.",
    )
    recipients = models.TextField(
        blank=True, help_text="Email: addresses, one per line or separated by commas."
    )
    url = models.TextField("webhook URL", blank=True)
    webhook_format = models.CharField(
        "webhook body", max_length=16, choices=Format.choices, default=Format.JSON
    )
    signing_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="Webhook: the receiver checks X-Jobs-Signature, an HMAC-SHA256 with this key.",
    )
    timeout = models.FloatField(
        default=5.0,
        validators=[MinValueValidator(0.1)],
        help_text="Webhook: seconds to wait for the receiver.",
    )
    sentry_dsn = models.CharField(
        "Sentry DSN",
        max_length=300,
        blank=True,
        help_text="Sentry: the project's DSN; empty uses SENTRY_DSN.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("test_alertchannel", "Can send a test alert")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def secret_values(self) -> list[str]:
        """The secret strings of this channel, to scrub from error messages."""
        return [value for name in self.SECRET_FIELDS if (value := getattr(self, name))]

    def recipient_list(self) -> list[str]:
        return [r.strip() for r in self.recipients.replace(",", "\n").splitlines() if r.strip()]


class AlertPolicy(models.Model):
    """A schedule's alert overrides; an empty field (or no row) follows the ALERTS_* settings."""

    schedule = models.OneToOneField(
        Schedule, on_delete=models.CASCADE, primary_key=True, related_name="alert_policy"
    )
    on_failure = models.BooleanField(
        "alert on failure",
        null=True,
        blank=True,
        help_text="An occurrence failed after its retries.",
    )
    failure_threshold = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Alert only after this many occurrences in a row failed.",
    )
    on_recovery = models.BooleanField(
        "alert on recovery",
        null=True,
        blank=True,
        help_text="Say so when it works again (the first success after an alert).",
    )
    on_missed = models.BooleanField(
        "alert on missed runs",
        null=True,
        blank=True,
        help_text="An occurrence did not start within the grace period of its time.",
    )
    grace = models.PositiveIntegerField(
        "grace period",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Seconds an occurrence may start late before it counts as missed.",
    )
    max_runtime = models.PositiveIntegerField(
        "maximum runtime",
        null=True,
        blank=True,
        help_text="Seconds: alert while a run is still running after this long (0: never).",
    )
    reminder_interval = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds: while an incident stays open and unacknowledged, failures send "
        "a reminder at most this often (0: never).",
    )
    channels = models.ManyToManyField(
        AlertChannel,
        blank=True,
        related_name="policies",
        help_text="None picked: the default channels.",
    )
    callback_channel = models.ForeignKey(
        AlertChannel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="callback_policies",
        limit_choices_to={"kind": AlertChannel.Kind.WEBHOOK},
        verbose_name="completion callback",
        help_text="A webhook channel told of the end of every occurrence (succeeded, failed "
        "after its retries, timed out, lost, cancelled), signed with its secret.",
    )

    class Meta:
        verbose_name = "alert policy"
        verbose_name_plural = "alert policies"

    def __str__(self) -> str:
        return f"alerts of {self.schedule_id}"


#: An incident no delivery was ever recorded for: ``last_notified_at`` is set only together
#: with the deliveries of an announcement.
NOTIFIED_NOBODY = Q(last_notified_at__isnull=True)


class IncidentQuerySet(models.QuerySet):
    def notified_nobody(self) -> IncidentQuerySet:
        """Incidents no channel was told of (none applied when they opened, nor since)."""
        return self.filter(NOTIFIED_NOBODY)


class Incident(models.Model):
    """One problem of one schedule (or of the platform), open until it is fixed: further
    failures update it instead of alerting again."""

    class Kind(models.TextChoices):
        FAILED = "failed", "Failed"
        MISSED = "missed", "Missed"
        TOO_LONG = "too_long", "Running too long"

    #: ``schedule:<id>:<kind>``, or ``platform:<kind>`` for one spanning many schedules.
    key = models.CharField(max_length=100)
    schedule = models.ForeignKey(
        Schedule, on_delete=models.SET_NULL, null=True, blank=True, related_name="incidents"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    title = models.CharField(max_length=300)
    #: The latest error, secrets masked.
    last_error = models.TextField(blank=True)
    count = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField("first seen", default=timezone.now)
    last_seen_at = models.DateTimeField("last seen", default=timezone.now)
    first_run_id = models.BigIntegerField(null=True, blank=True)
    last_run_id = models.BigIntegerField(null=True, blank=True)
    last_notified_at = models.DateTimeField(
        "last notified",
        null=True,
        blank=True,
        help_text="When it was last announced (a delivery per channel that took it); "
        "empty: it notified nobody.",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        permissions = [("acknowledge_incident", "Can acknowledge an incident")]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(resolved_at__isnull=True), name="incident_one_open"
            )
        ]
        indexes = [
            # What a finishing run looks at: its schedule's open incidents.
            models.Index(
                fields=["schedule"],
                name="incident_open_schedule",
                condition=Q(resolved_at__isnull=True),
            ),
            models.Index(fields=["-opened_at", "-id"], name="incident_recent"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def notified_nobody(self) -> bool:
        return self.last_notified_at is None

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged_at is not None else "open"


class Delivery(models.Model):
    """What every recorded message keeps of its sending (an alert's, a callback's); see
    :mod:`scheduler.alerts.deliveries` for how it is sent."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    #: A failed attempt: when the next one is due.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: Held by a task sending it until then, so two never send one delivery.
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class AlertDelivery(Delivery):
    """One alert to one channel: what was sent (no secrets in it) and how it went."""

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        REMINDER = "reminder", "Reminder"
        RESOLVED = "resolved", "Resolved"
        TEST = "test", "Test"

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries"
    )
    channel = models.ForeignKey(
        AlertChannel, on_delete=models.SET_NULL, null=True, related_name="deliveries"
    )
    channel_name = models.CharField(max_length=200)
    event = models.CharField(max_length=16, choices=Event.choices)

    class Meta:
        verbose_name_plural = "alert deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_pending",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["-created_at", "-id"], name="delivery_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} to {self.channel_name}"


class CallbackDelivery(Delivery):
    """The end of one occurrence told to one target: the URL an application gave when it
    triggered the run, or its schedule's callback channel. One per (ended attempt, target):
    an end announced twice is sent once. ``payload`` is the body sent (built at the first
    attempt, no secret in it); the URL is kept for the sending only, never shown whole."""

    class Target(models.TextChoices):
        URL = "url", "The trigger's callback URL"
        CHANNEL = "channel", "The schedule's callback channel"

    #: The attempt that ended, and the first attempt of its occurrence (the run an
    #: application was given): plain numbers, as the history's pruning deletes runs.
    run_id = models.BigIntegerField()
    occurrence_id = models.BigIntegerField()
    #: How the occurrence ended (succeeded, failed, timed_out, lost, cancelled, ...).
    run_status = models.CharField(max_length=16)
    target = models.CharField(max_length=16, choices=Target.choices)
    url = models.TextField(blank=True)
    #: No constraint in the database: a run's end records its channel as it was at its
    #: start, and one deleted meanwhile fails that delivery, not the recording of the others.
    channel = models.ForeignKey(
        AlertChannel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="callbacks",
        db_constraint=False,
    )
    channel_name = models.CharField(max_length=200, blank=True)
    #: The receiver's HTTP status at the last attempt that got an answer.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "completion callback"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "target"], name="callback_once_per_end")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="callback_pending",
                condition=Q(status="pending"),
            ),
            # A run's page lists its occurrence's callbacks.
            models.Index(fields=["occurrence_id"], name="callback_occurrence"),
            models.Index(fields=["-created_at", "-id"], name="callback_recent"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.run_status} to {self.destination}"

    @property
    def destination(self) -> str:
        """Where it goes, without the secret parts of a URL (its path and query)."""
        if self.target == self.Target.CHANNEL:
            # The name is recorded at the first attempt.
            return self.channel_name or f"channel #{self.channel_id}"
        return f"{urlsplit(self.url).hostname or '?'}/…"


class WatchdogLease(models.Model):
    """Which process runs the next watchdog pass: the one that moves ``next_run_at`` on."""

    name = models.CharField(max_length=50, primary_key=True)
    next_run_at = models.DateTimeField()
    holder = models.CharField(max_length=200, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
