"""Run history admin benchmark: the history list and a schedule's page on 2,000,000 runs, on
real PostgreSQL, against the same list with Django's stock paging.

    python -m bench.history_admin                    # 2,000,000 runs over 10,000 schedules
    python -m bench.history_admin --json > out.jsonl
    python -m bench.history_admin --runs 200000 --schedules 1000 --prune   # smaller, + pruning
    python -m bench.history_admin --schedules 100000 --case overview_24h --case overview_7d

It creates a database of its own, seeds it with SQL (``INSERT ... SELECT generate_series``,
the secondary indexes built after the load), runs ``VACUUM ANALYZE``, then requests each page
through Django's test client in this process: a warm-up request (which also counts the
queries), then ``--repeats`` timed ones. See bench/README.md for the cases and the fields.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench import database, tables
from bench.beat_dispatch import code_version, log
from bench.database import Databases

#: A page must be served within this (median server time).
TARGET_MS = 300.0
#: Seconds between runs of a schedule, by schedule (i % len): from every 5 minutes (200 runs
#: span 17 hours) to daily (200 runs span 200 days, so pruning has work).
INTERVALS = (300, 900, 3600, 3600, 3600, 21600, 86400)
TEAMS = ("billing", "search", "ops", "reports", "etl", "mail", "sync", "backup")
PURPOSES = ("nightly", "hourly", "cleanup", "export", "check", "refresh")
JOBS = (
    "builtin.http_request",
    "builtin.http_request",
    "builtin.file_cleanup",
    "builtin.management_command",
)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/jobs_catalog/tasks.py", line 62, in execute\n'
    "    result = self.job.call(params, context)\n"
    '  File "/app/jobs_catalog/builtin/http.py", line 140, in http_request\n'
    "    response = client.send(request)\n"
    "ConnectionError: [Errno 111] Connection refused\n"
)


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    #: Measured against the stock-paging list too.
    baseline: bool = True
    #: The overview: measured against its figures grouped over the raw history instead.
    overview: str = ""


def schedule_name(i: int) -> str:
    return f"{TEAMS[i % len(TEAMS)]}-{PURPOSES[(i // len(TEAMS)) % len(PURPOSES)]}-{i:05d}"


def cases(schedule_id: int, probe_name: str) -> list[Case]:
    prefix = probe_name  # one schedule's full name: a prefix matching exactly one
    return [
        Case("list_default", "scheduler/jobrun/"),
        Case("list_status_failed", "scheduler/jobrun/?status__exact=failed"),
        Case("list_status_lost", "scheduler/jobrun/?status__exact=lost"),
        Case("list_schedule", f"scheduler/jobrun/?schedule={schedule_id}"),
        Case("list_search_schedule", f"scheduler/jobrun/?q={prefix}"),
        Case("list_search_team", "scheduler/jobrun/?q=billing-export"),
        Case("list_search_job", "scheduler/jobrun/?q=builtin.file_"),
        Case("list_trigger_manual", "scheduler/jobrun/?trigger__exact=manual"),
        Case("list_last_7_days", "scheduler/jobrun/?scheduled=7d"),
        Case("list_page_50", "scheduler/jobrun/?p=50"),
        Case("schedule_page", f"scheduler/schedule/{schedule_id}/change/", baseline=False),
        Case("overview_24h", "", baseline=False, overview="24 hours"),
        Case("overview_7d", "?window=7d", baseline=False, overview="7 days"),
    ]


# The overview's history figures the obvious way: grouped over the raw run history at each
# view, with the database's own percentiles. The baseline of the overview cases.
NAIVE_OVERVIEW_SQL = [
    # Runs per hour by outcome.
    """SELECT date_trunc('hour', finished_at) AS hour, status, count(*)
       FROM scheduler_jobrun WHERE finished_at >= now() - %(window)s::interval
       GROUP BY 1, 2""",
    # Failure rate per job.
    """SELECT task_name, count(*) FILTER (WHERE status IN ('failed', 'timed_out', 'lost')),
              count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'timed_out', 'lost'))
       FROM scheduler_jobrun WHERE finished_at >= now() - %(window)s::interval
       GROUP BY 1""",
    # p50 / p95 duration per job.
    """SELECT task_name, percentile_cont(0.5) WITHIN GROUP (ORDER BY duration),
              percentile_cont(0.95) WITHIN GROUP (ORDER BY duration)
       FROM scheduler_jobrun
       WHERE finished_at >= now() - %(window)s::interval AND status = 'succeeded'
       GROUP BY 1""",
    # Dispatch lag per hour.
    """SELECT date_trunc('hour', finished_at),
              avg(extract(epoch FROM published_at - scheduled_for)),
              max(extract(epoch FROM published_at - scheduled_for))
       FROM scheduler_jobrun
       WHERE finished_at >= now() - %(window)s::interval AND trigger = 'beat'
         AND published_at IS NOT NULL
       GROUP BY 1""",
]


def measure_naive_overview(window: str, repeats: int) -> dict[str, Any]:
    """The naive GROUP BYs' server time (no page rendered: the baseline only gets cheaper)."""
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for attempt in range(repeats + 1):  # the first warms the cache, as measure() does
            started = time.perf_counter()
            for sql in NAIVE_OVERVIEW_SQL:
                cursor.execute(sql, {"window": window})
                cursor.fetchall()
            if attempt:
                times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
        "queries": len(NAIVE_OVERVIEW_SQL),
        "rows": None,
        "paging": "naive: GROUP BY over the raw history per view",
    }


def prepare_overview() -> dict[str, float]:
    """What beat keeps ready for the overview, from nothing: the first rollup (the last 8
    days of history) and the forecast of the next day over every schedule. Timed."""
    from django.utils import timezone

    from scheduler.runs import rollup
    from scheduler.schedules import forecast

    started = time.perf_counter()
    added = rollup.refresh(timezone.now())
    rollup_s = time.perf_counter() - started
    started = time.perf_counter()
    result = forecast.refresh(timezone.now())
    forecast_s = time.perf_counter() - started
    log(
        f"overview: first rollup of {added} runs in {rollup_s:.1f}s; forecast of "
        f"{result.schedules} schedules ({len(result.peaks)} pile-ups) in {forecast_s:.2f}s"
    )
    return {
        "rollup_first_s": round(rollup_s, 2),
        "rollup_runs": added,
        "forecast_s": round(forecast_s, 2),
    }


# --- seeding --------------------------------------------------------------------------------
def seed_schedules(n: int) -> None:
    """``n`` schedules with their cron entries, as
    ``scheduler.schedules.periodic.save_schedule`` lays them out, with bulk_create."""
    from django.db import transaction
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    from jobs_catalog.models import JobDefinition
    from scheduler.schedules.models import Schedule

    jobs = {d.name: d for d in JobDefinition.objects.filter(name__in=JOBS)}
    with transaction.atomic():
        crontabs = CrontabSchedule.objects.bulk_create(
            [CrontabSchedule(minute=str(i % 60), timezone="UTC") for i in range(n)],
            batch_size=database.SEED_BATCH,
        )
        tasks = PeriodicTask.objects.bulk_create(
            [
                PeriodicTask(
                    name=f"schedule:{i + 1}:{schedule_name(i)}",
                    task=JOBS[i % len(JOBS)],
                    crontab=crontab,
                    kwargs="{}",
                    headers="{}",
                    enabled=True,
                )
                for i, crontab in enumerate(crontabs)
            ],
            batch_size=database.SEED_BATCH,
        )
        Schedule.objects.bulk_create(
            [
                Schedule(
                    name=schedule_name(i),
                    job=jobs[task.task],
                    cron=f"{i % 60} * * * *",
                    timezone=("UTC", "Europe/Berlin", "America/New_York")[i % 3],
                    params={},
                    periodic_task=task,
                )
                for i, task in enumerate(tasks)
            ],
            batch_size=database.SEED_BATCH,
        )
        PeriodicTasks.update_changed()


SEED_RUNS_SQL = """
WITH s AS (
    SELECT id, periodic_task_id, (row_number() OVER (ORDER BY id)) - 1 AS idx,
           (SELECT task FROM django_celery_beat_periodictask p WHERE p.id = periodic_task_id)
             AS task
    FROM scheduler_schedule
), g AS (
    SELECT n, (n - 1) %% %(schedules)s AS idx, (n - 1) / %(schedules)s AS k,
           random() AS r, random() AS r2, random() AS r3
    FROM generate_series(1, %(runs)s) AS n
), rows AS (
    SELECT g.*, s.id AS schedule_id, s.periodic_task_id, s.task,
           (%(intervals)s::int[])[(g.idx %% %(n_intervals)s) + 1] AS every,
           CASE
             WHEN g.k = 0 AND g.idx %% 50 = 0 THEN 'running'
             WHEN g.k = 0 AND g.idx %% 97 = 0 THEN 'queued'
             WHEN g.r < 0.030 THEN 'failed'
             WHEN g.r < 0.035 THEN 'timed_out'
             WHEN g.r < 0.037 THEN 'lost'
             WHEN g.r < 0.045 THEN 'skipped'
             WHEN g.r < 0.048 THEN 'missed'
             WHEN g.r < 0.050 THEN 'cancelled'
             ELSE 'succeeded'
           END AS status,
           -- A retry points at the next older run of its schedule (k + 1, odd k: never a
           -- retry itself), as the first attempt of its occurrence.
           (g.k %% 2 = 0 AND g.k < %(per_schedule)s - 1 AND g.r3 < 0.02) AS is_retry
    FROM g JOIN s ON s.idx = g.idx
), timed AS (
    SELECT rows.*,
           %(now)s::timestamptz
             - make_interval(secs => (k + CASE WHEN is_retry THEN 1 ELSE 0 END) * every
                                     + idx %% 60) AS at,
           ((idx %% 20) + 1) * (0.5 + r2) AS took
    FROM rows
)
INSERT INTO scheduler_jobrun (
    id, schedule_id, periodic_task_id, occurrence_id, task_name, scheduled_for, trigger,
    status, attempt, max_attempts, note, task_id, queue, params, args, created_at,
    published_at, started_at, finished_at, duration, queue_wait, worker_host, worker_pid,
    retry_delay, next_attempt_at, result, error_type, error_message, traceback, logs
)
SELECT
    n, schedule_id, periodic_task_id,
    CASE WHEN is_retry THEN n + %(schedules)s END,
    task, at,
    CASE WHEN is_retry THEN 'retry' WHEN r2 < 0.010 THEN 'manual'
         WHEN r2 < 0.012 THEN 'backfill' ELSE 'beat' END,
    status,
    CASE WHEN is_retry THEN 2 ELSE 1 END, 3, '', gen_random_uuid(), '',
    '{"url": "https://example.com/health", "timeout": 10}'::jsonb, '[]'::jsonb,
    at, at + interval '50 milliseconds',
    CASE WHEN status IN ('queued', 'skipped', 'missed') THEN NULL
         ELSE at + interval '200 milliseconds' END,
    CASE WHEN status IN ('queued', 'running', 'skipped', 'missed') THEN NULL
         ELSE at + interval '200 milliseconds' + make_interval(secs => took) END,
    CASE WHEN status IN ('queued', 'running', 'skipped', 'missed') THEN NULL ELSE took END,
    CASE WHEN status IN ('queued', 'skipped', 'missed') THEN NULL ELSE 0.15 END,
    'worker-' || (n %% 8), 1000 + n %% 50, NULL, NULL,
    CASE WHEN status = 'succeeded' THEN '{"status": 200, "elapsed": 0.12}' ELSE '' END,
    CASE WHEN status IN ('failed', 'lost', 'timed_out') THEN 'ConnectionError' ELSE '' END,
    CASE WHEN status IN ('failed', 'lost', 'timed_out')
         THEN '[Errno 111] Connection refused' ELSE '' END,
    CASE WHEN status IN ('failed', 'lost', 'timed_out') THEN %(traceback)s ELSE '' END,
    'INFO jobs.' || task || ': starting run ' || n
      || CASE WHEN status IN ('failed', 'lost', 'timed_out')
              THEN E'\\nERROR jobs.' || task || ': connection refused' ELSE '' END
FROM timed
"""


def seed_runs(runs: int, schedules: int, now: datetime) -> None:
    """``runs`` rows, ``runs / schedules`` per schedule: the secondary indexes are dropped
    for the load and built afterwards (as a restore does), then VACUUM ANALYZE."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'scheduler_jobrun' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            SEED_RUNS_SQL,
            {
                "runs": runs,
                "schedules": schedules,
                "per_schedule": runs // schedules,
                "intervals": list(INTERVALS),
                "n_intervals": len(INTERVALS),
                "now": now,
                "traceback": TRACEBACK,
            },
        )
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('scheduler_jobrun', 'id'), "
            "(SELECT max(id) FROM scheduler_jobrun))"
        )
    connection.close()
    # VACUUM cannot run in a transaction block: a connection of its own, in autocommit.
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        raw.execute("VACUUM ANALYZE")


# --- measuring --------------------------------------------------------------------------------
def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def measure(client: Any, url: str, repeats: int, fresh: bool = False) -> dict[str, Any]:
    """``fresh``: empty Django's cache before each request (the overview caches the queue
    depths for a few seconds; each timed view pays for asking the broker)."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:  # the warm-up counts the queries
        response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    # Read now: the next request empties the connection's query log.
    sql = [q["sql"] for q in captured.captured_queries]
    rows = response.content.decode().count('class="field-scheduled_column"')
    times = []
    for _ in range(repeats):
        if fresh:
            cache.clear()
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
        "queries": len(sql),
        "rows": rows if "/jobrun/" in url else None,
        "sql": sql,
    }


def explain(sql_list: list[str]) -> str:
    """EXPLAIN ANALYZE of the slowest-looking history query of a request."""
    from django.db import connection

    history = [q for q in sql_list if "scheduler_jobrun" in q and q.lstrip().startswith("SELECT")]
    if not history:
        return ""
    lines = []
    with connection.cursor() as cursor:
        for sql in history:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
            lines.append("\n".join(row[0] for row in cursor.fetchall()))
    return "\n---\n".join(lines)


def run_cases(opts: argparse.Namespace, version: str | None) -> list[dict[str, Any]]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import clear_url_caches

    from scheduler.schedules.models import Schedule

    # Not setup_test_environment(): its instrumented template rendering would be timed too.

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.ROOT_URLCONF = "bench.history_site"
    clear_url_caches()
    user = get_user_model().objects.create_superuser("bench", password="x")
    client = Client()
    client.force_login(user)
    probe = Schedule.objects.order_by("pk")[opts.schedules // 2]
    results = []
    prepared: dict[str, float] | None = None
    for case in cases(probe.pk, probe.name):
        if opts.case and case.name not in opts.case:
            continue
        if case.overview and prepared is None:
            prepared = prepare_overview()
        ours = measure(client, f"/admin/{case.path}", opts.repeats, fresh=bool(case.overview))
        result: dict[str, Any] = {
            "case": case.name,
            "url": f"/admin/{case.path}",
            "runs": opts.runs,
            "schedules": opts.schedules,
            **{k: v for k, v in ours.items() if k != "sql"},
            "target_ms": TARGET_MS,
            "target_met": ours["median_ms"] <= TARGET_MS,
            "baseline": None,
            "code": version,
        }
        if case.baseline and not opts.no_baseline:
            stock = measure(client, f"/stock/{case.path}", opts.repeats)
            result["baseline"] = {k: v for k, v in stock.items() if k != "sql"}
            result["baseline"]["paging"] = "Django stock: COUNT(*) + show_full_result_count"
        if case.overview:
            result["baseline"] = measure_naive_overview(case.overview, opts.repeats)
            result["prepared"] = prepared
        if opts.explain:
            log(f"{case.name}:\n{explain(ours['sql'])}")
        log(
            f"{case.name}: {ours['median_ms']} ms median, {ours['max_ms']} ms max, "
            f"{ours['queries']} queries"
            + (f"; baseline {result['baseline']['median_ms']} ms" if result["baseline"] else "")
        )
        results.append(result)
    return results


def run_prune(opts: argparse.Namespace) -> dict[str, Any]:
    from datetime import timedelta

    from django.db import connection

    from scheduler.runs.models import JobRun
    from scheduler.runs.retention import prune_history

    before = JobRun.objects.count()
    started = time.perf_counter()
    report = prune_history(older_than=timedelta(days=30), keep_last=50)
    seconds = time.perf_counter() - started
    connection.close()
    return {
        "case": "prune",
        "runs": before,
        "deleted": report.deleted,
        "batches": report.batches,
        "kept": dict(report.kept),
        "seconds": round(seconds, 1),
        "deleted_per_s": round(report.deleted / seconds) if seconds else None,
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "case",
        "median ms",
        "p95 ms",
        "max ms",
        "queries",
        "rows",
        "baseline median ms",
        "baseline max ms",
        "baseline queries",
        "target",
    )
    rows = [head]
    for r in results:
        if r["case"] == "prune":
            continue
        b = r["baseline"] or {}
        rows.append(
            (
                r["case"],
                f"{r['median_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['max_ms']:.1f}",
                str(r["queries"]),
                "-" if r["rows"] is None else str(r["rows"]),
                f"{b['median_ms']:.1f}" if b else "-",
                f"{b['max_ms']:.1f}" if b else "-",
                str(b["queries"]) if b else "-",
                "met" if r["target_met"] else "MISSED",
            )
        )
    lines = tables.aligned(rows, left={0})
    for r in results:
        if r["case"] == "prune":
            lines.append(
                f"\nprune (30 days, keep 50 per schedule): {r['deleted']} of {r['runs']} runs "
                f"deleted in {r['seconds']} s ({r['batches']} batches), kept: {r['kept']}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history_admin", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=2_000_000, help="runs seeded (2000000)")
    parser.add_argument("--schedules", type=int, default=10_000, help="schedules (10000)")
    parser.add_argument("--repeats", type=int, default=9, help="timed requests per case (9)")
    parser.add_argument("--case", action="append", help="only this case (repeatable)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the stock lists")
    parser.add_argument("--prune", action="store_true", help="time the pruning job at the end")
    parser.add_argument("--explain", action="store_true", help="log EXPLAIN ANALYZE per case")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout, table on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    database.add_server_arguments(parser, "bench_history")
    opts = parser.parse_args(argv)
    if opts.schedules < 1 or opts.runs < opts.schedules or opts.repeats < 1:
        parser.error("need --runs >= --schedules >= 1 and --repeats >= 1")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    version = code_version()
    dbs = Databases(opts.database_server, opts.database)
    env = database.django_env(dbs.url(), "memory://")
    env["JOBS_HISTORY_PRUNE_CRON"] = ""  # only the seeded schedules
    os.environ.update(env)
    os.environ["DATABASE_POOL"] = "false"  # this process drops its database at the end
    import django

    django.setup()
    failed = False
    results: list[dict[str, Any]] = []
    try:
        log(f"code {version}; migrating {dbs.template}")
        dbs.create_template(env)
        dbs.fresh()
        started = time.time()
        seed_schedules(opts.schedules)
        log(f"seeded {opts.schedules} schedules in {time.time() - started:.1f}s")
        started = time.time()
        seed_runs(opts.runs, opts.schedules, datetime.now(UTC))
        log(f"seeded {opts.runs} runs (indexes, VACUUM ANALYZE) in {time.time() - started:.1f}s")
        results = run_cases(opts, version)
        if opts.prune:
            results.append(run_prune(opts))
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        if not opts.keep:
            dbs.drop_all()
    print("\n" + table(results), file=sys.stderr if opts.json else sys.stdout)
    if opts.json:
        for result in results:
            print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
