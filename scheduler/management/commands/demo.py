"""Set up a local demo: a superuser and a few schedules of built-in jobs.

    manage.py demo [--base-url http://127.0.0.1:8000] [--username admin]

Each demo is a :class:`~scheduler.models.Schedule`, so it owns a django-celery-beat
``PeriodicTask`` + ``CrontabSchedule`` (its time zone included) like any schedule made in the
admin. Safe to run again: the superuser is created once (its password is printed that one
time only), and each demo schedule is created or brought up to date by its name; an admin's
choice to disable or pause one is kept.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from jobs_catalog.errors import ParameterError, UnknownJobError
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_USERNAME = "admin"
HEALTH_CHECK_NAME = "Demo: admin login page health check"
#: Under DATA_DIR: the directory the file cleanup demo looks at (``make run`` allows it).
DEMO_FILES_DIRNAME = "demo-files"
#: Files placed in an empty demo directory, with their age in days, so the dry run of
#: the cleanup has something to report.
SAMPLE_FILES = {"old-90-days.log": 90, "old-60-days.log": 60, "recent.log": 0}


@dataclass(frozen=True)
class Demo:
    name: str
    job: str
    cron: str  # minute hour day-of-month month day-of-week
    kwargs: dict[str, Any]
    description: str
    needs_file_root: Path | None = None


class Command(BaseCommand):
    help = "Create the demo superuser and a few demo schedules of built-in jobs (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default=DEFAULT_BASE_URL,
            help=f"where the web process answers, for the health check ({DEFAULT_BASE_URL})",
        )
        parser.add_argument(
            "--username",
            default=DEFAULT_USERNAME,
            help=f"the demo superuser's name (default {DEFAULT_USERNAME!r})",
        )

    def handle(self, *args: Any, base_url: str, username: str, **options: Any) -> None:
        base_url = base_url.rstrip("/")
        self.ensure_superuser(username, base_url)
        files_dir = self.ensure_files_dir()
        with transaction.atomic():
            for demo in demos(base_url, files_dir):
                self.ensure_schedule(demo)

    # --- the superuser --------------------------------------------------------------------
    def ensure_superuser(self, username: str, base_url: str) -> None:
        user_model = get_user_model()
        lookup = {user_model.USERNAME_FIELD: username}
        if user_model._default_manager.filter(**lookup).exists():
            self.stdout.write(
                f"Demo superuser {username!r} already exists; its password was shown when it "
                f"was created. To set a new one: python manage.py changepassword {username}"
            )
            return
        password = secrets.token_urlsafe(12)
        extra = {}
        if "email" in {f.name for f in user_model._meta.get_fields()}:
            extra["email"] = f"{username}@localhost"
        user_model._default_manager.create_superuser(**lookup, password=password, **extra)
        rule = "=" * 66
        self.stdout.write(
            "\n".join(
                [
                    rule,
                    "  Demo superuser created. Sign in at " + f"{base_url}/admin/",
                    f"    username: {username}",
                    f"    password: {password}",
                    "  This password is shown only now; only its hash is stored. To set a",
                    f"  new one later: python manage.py changepassword {username}",
                    rule,
                ]
            ),
            self.style.SUCCESS,
        )

    # --- the demo directory ---------------------------------------------------------------
    def ensure_files_dir(self) -> Path:
        directory = Path(settings.DATA_DIR) / DEMO_FILES_DIRNAME
        directory.mkdir(parents=True, exist_ok=True)
        if not any(directory.iterdir()):
            now = time.time()
            for name, age_days in SAMPLE_FILES.items():
                path = directory / name
                path.write_text(f"sample log file, {age_days} days old\n")
                stamp = now - age_days * 86400
                os.utime(path, (stamp, stamp))
        return directory

    # --- the schedules --------------------------------------------------------------------
    def ensure_schedule(self, demo: Demo) -> None:
        try:
            job = registry.get(demo.job)
        except UnknownJobError:
            self.stderr.write(
                self.style.WARNING(
                    f"Skipped demo {demo.name!r}: job {demo.job!r} is not in the catalog "
                    "(see: python manage.py jobs list)."
                )
            )
            return
        if demo.needs_file_root is not None and not _inside_file_roots(demo.needs_file_root):
            self.stderr.write(
                self.style.WARNING(
                    f"Skipped demo {demo.name!r}: {demo.needs_file_root} is not under "
                    "JOBS_FILE_ROOTS, so the job would refuse it. `make run` allows it; by "
                    f"hand: JOBS_FILE_ROOTS={demo.needs_file_root} python manage.py demo"
                )
            )
            return
        try:
            kwargs = job.validate(demo.kwargs)
        except ParameterError as exc:
            self.stderr.write(self.style.WARNING(f"Skipped demo {demo.name!r}: {exc}"))
            return

        definition = JobDefinition.objects.filter(name=job.name, available=True).first()
        if definition is None:
            self.stderr.write(
                self.style.WARNING(
                    f"Skipped demo {demo.name!r}: job {job.name!r} is not in the database "
                    "mirror yet (run: python manage.py jobs sync)."
                )
            )
            return

        wanted = {
            "job": definition,
            "params": kwargs,
            "cron": demo.cron,
            "timezone": settings.TIME_ZONE,
            "description": demo.description,
        }
        schedule = Schedule.objects.filter(name=demo.name).first()
        created = schedule is None
        if created:
            schedule = Schedule(name=demo.name)
            changed = list(wanted)
        else:
            changed = [
                field for field, value in wanted.items() if getattr(schedule, field) != value
            ]
            if not changed and schedule.periodic_task_id is not None:
                self.stdout.write(f"Demo schedule {demo.name!r} is up to date.")
                return
        for field in changed:
            setattr(schedule, field, wanted[field])
        try:
            save_schedule(schedule)
        except ValidationError as exc:
            self.stderr.write(self.style.WARNING(f"Skipped demo {demo.name!r}: {exc}"))
            return
        if created:
            self.stdout.write(
                f"Created demo schedule {demo.name!r} ({demo.cron}, {schedule.timezone})."
            )
        else:
            self.stdout.write(f"Updated demo schedule {demo.name!r} ({', '.join(changed)}).")


def demos(base_url: str, files_dir: Path) -> list[Demo]:
    return [
        Demo(
            name=HEALTH_CHECK_NAME,
            job="builtin.http_request",
            cron="* * * * *",
            kwargs={"url": f"{base_url}/admin/login/", "expected_status": [200], "timeout": 10},
            description="Every minute, checks that the admin login page answers 200.",
        ),
        Demo(
            name="Demo: clean up old log files (dry run)",
            job="builtin.file_cleanup",
            cron="*/5 * * * *",
            kwargs={
                "directory": str(files_dir),
                "pattern": "*.log",
                "older_than_days": 30,
                "dry_run": True,
            },
            description=(
                "Every 5 minutes, lists the *.log files older than 30 days in the demo "
                "directory that a real run would delete. Dry run: nothing is deleted."
            ),
            needs_file_root=files_dir,
        ),
        Demo(
            name="Demo: clear expired sessions",
            job="builtin.management_command",
            cron="30 3 * * *",
            kwargs={"command": "clearsessions"},
            description="Daily at 03:30, removes expired login sessions.",
        ),
    ]


def _inside_file_roots(directory: Path) -> bool:
    target = directory.resolve()
    return any(target.is_relative_to(Path(root).resolve()) for root in settings.JOBS_FILE_ROOTS)
