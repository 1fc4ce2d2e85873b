"""The Celery app. Its settings live in config/settings.py under the CELERY_ prefix."""

import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import worker_init

from config import kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery warns at every broker connection loss while running jobs are not cancelled, urging
# that they be: here they must not be (see CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_...).
warnings.filterwarnings(
    "ignore",
    message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
    category=CPendingDeprecationWarning,
)


@worker_init.connect(dispatch_uid="config.kombu_redis")
def _fix_kombu(**kwargs) -> None:
    # A worker holding an unacknowledged message must survive a Redis outage.
    kombu_redis.guard_detached_channels()
