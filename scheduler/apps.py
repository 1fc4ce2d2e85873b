from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scheduler import (
            periodic,  # noqa: F401  (keeps cron entries in step)
            signals,  # noqa: F401  (records runs, in workers only)
        )
