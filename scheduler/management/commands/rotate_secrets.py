"""Seal every schedule's secret parameter values under the first key.

    manage.py rotate_secrets [--check]

The key rotation (see the README): put the new key first in ``SECRETS_ENCRYPTION_KEYS``, keep
the old ones after it, restart every process, run this command, and remove an old key once
``--check`` passes (and no message sealed with it waits in a queue). Values already under
the first key are left as they are, so running it again changes nothing; a clear secret left
by an older version is sealed. A schedule whose secret no key opens is left unchanged and
named, and the command exits with an error.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_celery_beat.models import PeriodicTask

from jobs_catalog.secrets import key_source, reseal_params
from scheduler.schedules.models import Schedule
from scheduler.schedules.secret_storage import rewrite_schedules


class Command(BaseCommand):
    help = "Seal every schedule's secret parameter values under the first key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="change nothing: name the schedules with a secret that is clear or not "
            "sealed under the first key, and exit with an error if there is one",
        )

    def handle(self, *args: Any, check: bool, **options: Any) -> None:
        self.stdout.write(f"Keys: {key_source()}.")
        outcome = rewrite_schedules(reseal_params, Schedule, PeriodicTask, dry_run=check)
        for name in outcome.unknown_job:
            self.stdout.write(
                self.style.WARNING(
                    f"  {name}: its job's code is not installed here; only its sealed values "
                    "were looked at"
                )
            )
        for line in outcome.failed:
            self.stderr.write(f"  {line}")
        if check:
            for name in outcome.changed:
                self.stdout.write(f"  not under the first key: {name}")
            self.stdout.write(f"{len(outcome.changed)} schedule(s) not under the first key.")
        else:
            self.stdout.write(f"{len(outcome.changed)} schedule(s) sealed under the first key.")
        if outcome.failed:
            raise CommandError(
                f"{len(outcome.failed)} schedule(s) left unchanged: a secret no key here "
                "opens. Add the key it was sealed with, or type the secret again in the admin."
            )
        if check and outcome.changed:
            raise CommandError("Run manage.py rotate_secrets before removing an old key.")
