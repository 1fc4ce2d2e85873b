"""The Celery app. Its settings live in config/settings.py under the CELERY_ prefix."""

import os

from celery import Celery
from celery.signals import worker_init

from config import kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect(dispatch_uid="config.kombu_redis")
def _fix_kombu(**kwargs) -> None:
    # A worker holding an unacknowledged message must survive a Redis outage.
    kombu_redis.guard_detached_channels()
