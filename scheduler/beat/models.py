"""Beat's own tables: the index of next fire times and the change journal it reads."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django_celery_beat.models import PeriodicTask


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


class BeatChange(models.Model):
    """Change journal over django-celery-beat's tables, written by database triggers, so an
    edit made anywhere (admin, ORM ``save``, ``QuerySet.update``, ``bulk_create``, raw SQL) is
    seen by beat, which reads only what is new."""

    source = models.CharField(max_length=16)  # task, crontab, interval, clocked, solar
    row_id = models.BigIntegerField()
    #: PostgreSQL transaction id, for reading in commit-safe order (see scheduler.beat.changes).
    xid = models.BigIntegerField(null=True)
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["xid"], name="beatchange_xid")]


class BeatHeartbeat(models.Model):
    """Each beat process stamps its row as its loop turns, so the overview can tell a beat
    that stopped (no stamp for ``SCHEDULER_BEAT_LOST_AFTER`` seconds) from one that runs."""

    #: ``host:pid``, one row per beat process.
    name = models.CharField(max_length=300, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "beat heartbeat"

    def __str__(self) -> str:
        return f"{self.name} (seen {self.last_seen_at:%H:%M:%S})"
