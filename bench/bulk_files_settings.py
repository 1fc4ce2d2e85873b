"""Settings for ``bench.bulk_files``: the platform's own, plus the plain Celery task it is
measured against."""

from config.settings import *  # noqa: F403

CELERY_IMPORTS = ["bench.bulk_files_naive"]
