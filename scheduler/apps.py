from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import worker_init
        from django.db.models.signals import post_migrate

        from scheduler import checks  # noqa: F401
        from scheduler.alerts import setup as alerts
        from scheduler.beat import events as beat_events
        from scheduler.beat import heartbeats as beat_heartbeats
        from scheduler.runs import (
            plain_tasks,  # noqa: F401  (records plain tasks' runs, in workers only)
            rollup,
            stopping,  # noqa: F401  (the workers' command that stops a cancelled run's job)
        )
        from scheduler.schedules import (
            forecast,
            periodic,  # noqa: F401  (keeps cron entries in step)
        )
        from scheduler.schedules.platform_schedules import create_platform_schedules
        from scheduler.web import metrics

        post_migrate.connect(create_platform_schedules, sender=self)
        alerts.connect(beat_loop_turned=beat_events.loop_turned)
        # The worker's and beat's main process serve their metrics on METRICS_PORT.
        worker_init.connect(metrics.start_exporter, dispatch_uid="metrics.worker")
        beat_events.loop_turned.connect(metrics.start_exporter, dispatch_uid="metrics.beat")
        # Beat stamps its heartbeat and keeps the overview's rollup and forecast fresh.
        beat_events.loop_turned.connect(beat_heartbeats.offer, dispatch_uid="beat.heartbeat")
        beat_events.loop_turned.connect(rollup.in_background.offer, dispatch_uid="overview.rollup")
        beat_events.loop_turned.connect(
            forecast.in_background.offer, dispatch_uid="overview.forecast"
        )
