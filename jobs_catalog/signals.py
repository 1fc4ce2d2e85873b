"""Keep the JobDefinition mirror in step: after migrations, and when a worker or beat starts
(a plugin package may have been installed without a migration)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import beat_init, worker_ready

logger = logging.getLogger(__name__)


def sync_after_migrate(using: str = "default", **kwargs: Any) -> None:
    from jobs_catalog.sync import sync_job_definitions

    sync_job_definitions(using=using)


@worker_ready.connect
@beat_init.connect
def sync_at_process_start(**kwargs: Any) -> None:
    from jobs_catalog.sync import sync_job_definitions

    try:
        sync_job_definitions()
    except Exception:  # an unmigrated database must not keep a worker from starting
        logger.exception("job catalog: could not sync job definitions")
