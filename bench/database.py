"""The benchmark's own PostgreSQL database and Redis database: created, migrated, seeded and
dropped here, so nothing else is touched.

The schema is migrated once into a template database; every run starts from a fresh copy of
it (``CREATE DATABASE ... TEMPLATE``), so each scheduler starts from the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from bench.procs import ROOT

#: Rows per INSERT when seeding.
SEED_BATCH = 5000


@dataclass(frozen=True)
class Cron:
    minute: str
    hour: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    day_of_week: str = "*"


class Databases:
    def __init__(self, server_url: str, name: str):
        self.server_url = server_url.rstrip("/")
        self.name = name
        self.template = f"{name}_template"

    def url(self, name: str | None = None) -> str:
        return f"{self.server_url}/{name or self.name}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def _drop(self, connection: psycopg.Connection, name: str) -> None:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def create_template(self, env: dict[str, str]) -> None:
        """Create the template database and migrate it (in a subprocess, as deployments do)."""
        with self._admin() as admin:
            self._drop(admin, self.template)
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": self.url(self.template), "LOG_LEVEL": "WARNING"},
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def fresh(self) -> None:
        """Replace the bench database with an empty, migrated copy of the template."""
        from django.db import connections

        connections.close_all()
        with self._admin() as admin:
            self._drop(admin, self.name)
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(self.name), sql.Identifier(self.template)
                )
            )

    def drop_all(self) -> None:
        from django.db import connections

        connections.close_all()
        with self._admin() as admin:
            self._drop(admin, self.name)
            self._drop(admin, self.template)


def seed(rows: Iterable[tuple[str, Cron]], queue: str) -> int:
    """Insert one PeriodicTask with its own CrontabSchedule (UTC) per ``(name, cron)``, as
    ``scheduler.schedules.periodic.save_schedule`` lays them out, with ``bulk_create``; then tell
    django-celery-beat (``PeriodicTasks.update_changed``) and refresh the planner's statistics.
    """
    from django.db import connection, transaction
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    rows = list(rows)
    with transaction.atomic():
        crontabs = CrontabSchedule.objects.bulk_create(
            [
                # The time zone is given: its default lists every zone on disk, per row.
                CrontabSchedule(
                    minute=c.minute,
                    hour=c.hour,
                    day_of_month=c.day_of_month,
                    month_of_year=c.month_of_year,
                    day_of_week=c.day_of_week,
                    timezone="UTC",
                )
                for _, c in rows
            ],
            batch_size=SEED_BATCH,
        )
        PeriodicTask.objects.bulk_create(
            [
                PeriodicTask(
                    name=name,
                    task="bench.noop",
                    crontab=crontab,
                    args="[]",
                    kwargs=json.dumps({"n": i}),
                    headers="{}",
                    queue=queue,
                    enabled=True,
                )
                for i, ((name, _), crontab) in enumerate(zip(rows, crontabs, strict=True))
            ],
            batch_size=SEED_BATCH,
        )
        PeriodicTasks.update_changed()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()
    return len(rows)


def add_server_arguments(
    parser: argparse.ArgumentParser, database: str, redis_db: int | None = None
) -> None:
    """The benchmarks' ``--database-server`` and ``--database`` (and ``--redis`` when they use
    Redis), with the same environment overrides everywhere."""
    parser.add_argument(
        "--database-server",
        default=os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432"),
    )
    parser.add_argument("--database", default=database, help="database name (dropped!)")
    if redis_db is not None:
        parser.add_argument(
            "--redis",
            default=os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}"),
            help="Redis database (flushed!)",
        )


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def delete_queue(url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{queue}*"))
    if keys:
        client.delete(*keys)


def queued(url: str, queue: str) -> int:
    """Messages waiting in ``queue`` (all of kombu's priority sub-queues)."""
    import redis

    client = redis.Redis.from_url(url)
    keys = [k for k in client.scan_iter(match=f"{queue}*") if client.type(k) == b"list"]
    return sum(client.llen(k) for k in keys)


def django_env(database_url: str, broker_url: str) -> dict[str, str]:
    """The environment for this process and its children."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-beat-dispatch-local-only",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "PYTHONUNBUFFERED": "1",
    }
