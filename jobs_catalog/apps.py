from django.apps import AppConfig


class JobsCatalogConfig(AppConfig):
    name = "jobs_catalog"
    verbose_name = "Job catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from jobs_catalog import checks  # noqa: F401  (registers the system checks)
        from jobs_catalog.discovery import discover
        from jobs_catalog.sync_hooks import sync_after_migrate
        from jobs_catalog.tasks import bind_tasks

        bind_tasks(discover())
        post_migrate.connect(sync_after_migrate, sender=self)
