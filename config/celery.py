"""The Celery app. Its settings live in config/settings.py under the CELERY_ prefix."""

import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import celeryd_after_setup, worker_init

from config import kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect(dispatch_uid="config.kombu_redis")
def _fix_kombu(**kwargs) -> None:
    # A worker holding an unacknowledged message must survive a Redis outage.
    kombu_redis.guard_detached_channels()


@celeryd_after_setup.connect(dispatch_uid="config.connection_loss_warning")
def _quiet_connection_loss_warning(**kwargs) -> None:
    # At every broker connection loss Celery warns that running jobs are not cancelled and
    # urges that they be: here they must not be (settings: ..._ON_CONNECTION_LOSS). After
    # Celery's logging setup, which shows every such warning.
    warnings.filterwarnings(
        "ignore",
        message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
        category=CPendingDeprecationWarning,
    )
