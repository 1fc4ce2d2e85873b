"""When the JobDefinition mirror is brought in step (:mod:`jobs_catalog.sync` does it): the
receivers of Django's ``post_migrate`` and Celery's beat and worker start signals (a plugin
package may have been installed without a migration). A worker also records what it can
run, and keeps that fresh until it stops (:mod:`jobs_catalog.worker_catalog`)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import beat_init, worker_ready, worker_shutdown

from jobs_catalog import worker_catalog
from jobs_catalog.sync import sync_job_definitions

logger = logging.getLogger(__name__)


def sync_after_migrate(using: str = "default", **kwargs: Any) -> None:
    sync_job_definitions(using=using)


# Beat sends beat_init once Django is set up (Celery's Django fixup, as beat's loader imports
# the task modules) and its scheduler is made, so this receiver, connected by the app's
# ready(), hears it (tests/e2e/test_catalog_sync_at_beat_start.py starts a real beat).
@beat_init.connect
def sync_at_beat_start(**kwargs: Any) -> None:
    try:
        sync_job_definitions()
    except Exception:  # an unmigrated database must not keep beat from starting
        logger.exception("job catalog: could not sync job definitions")


worker_ready.connect(worker_catalog.start_in_worker, dispatch_uid="jobs_catalog.worker_start")
worker_shutdown.connect(worker_catalog.stop_in_worker, dispatch_uid="jobs_catalog.worker_stop")
