"""Settings for ``bench.run_throughput``: the platform's own, plus the no-op job and tasks,
and django-celery-results (used only when ``BENCH_RESULTS=django-db``)."""

import os

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_celery_results", "bench.throughput_app"]
CELERY_IMPORTS = ["bench.throughput_app.tasks"]
if os.environ.get("BENCH_RESULTS") == "django-db":
    CELERY_RESULT_BACKEND = "django-db"
    CELERY_TASK_IGNORE_RESULT = False
