from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from scheduler import (  # noqa: F401
            celery_signals,  # records runs, in workers only
            checks,
            periodic,  # keeps cron entries in step
        )
        from scheduler.alerts import setup as alerts
        from scheduler.signals import create_platform_schedules

        post_migrate.connect(create_platform_schedules, sender=self)
        alerts.connect()
