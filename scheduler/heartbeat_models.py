"""Worker liveness: each worker's main process stamps its row every few seconds, so beat's
reaper can tell a run whose worker is alive (leave it: the worker kills a job at its hard
limit itself) from one whose worker died (lost, rerun)."""

from __future__ import annotations

from django.db import models


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
