"""Watchdog benchmark: what one alerting watchdog pass (``scheduler.alerts.watchdog.run_checks``)
costs at 10,000 and 100,000 schedules with a run history, on real PostgreSQL (and Redis as the
broker the alerts are queued on), against the per-schedule check a watchdog would otherwise
make, measured in the same run.

    python -m bench.watchdog                           # 10,000 and 100,000 schedules (~1.5 min)
    python -m bench.watchdog --schedules 100000 --json > results.jsonl
    python -m bench.watchdog --scale 2000 --passes 5   # a quick smoke (~15 s)

Per size it seeds, in a database of its own: the schedules with their django-celery-beat rows
and beat entries (``scheduler.beat.entries.reconcile``, as beat's start-up makes them), alert
policies, and ``--history`` runs per schedule (COPY, indexes built afterwards, VACUUM
ANALYZE) in which a fixed set of schedules is in trouble: a stuck queue, beat behind on a few
entries, runs hung past their maximum runtime. Then it times passes in this process (the
configuration cache warm, as in a worker) and checks that each pass finds exactly what was
seeded. See bench/README.md for the cases and the fields.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from bench import database, tables
from bench.beat_dispatch import code_version, log
from bench.database import Databases
from bench.history_admin import percentile
from bench.procs import host_busy, host_cpu

#: A pass must take less than this (database + Python, median of the timed passes).
TARGET_MS = 100.0
TARGET = "a pass at 100,000 schedules under 100 ms (median, database + Python)"
#: Watchdog rows read per check and pass (scheduler.alerts.watchdog.BATCH): the seeded late
#: runs stay under it, so every pass can see every seeded problem.
BATCH = 1000

ZONES = ("UTC", "Europe/Berlin", "America/New_York")
TEAMS = ("billing", "search", "ops", "reports", "etl", "mail", "sync", "backup")
JOBS = (
    "builtin.http_request",
    "builtin.http_request",
    "builtin.file_cleanup",
    "builtin.management_command",
)
#: Cron kinds by ``i % 20``: 10% every 5 minutes, 20% every 15, 40% hourly, 20% daily,
#: 10% on weekdays. (kind, how far back the history of --history fires can reach)
KINDS = (
    *[("5min", timedelta(hours=2))] * 2,
    *[("15min", timedelta(hours=6))] * 4,
    *[("hourly", timedelta(days=1))] * 8,
    *[("daily", timedelta(days=20))] * 4,
    *[("weekdays", timedelta(days=30))] * 2,
)

# The schedules in trouble: the same numbers at every size (what a pass reads is what is
# wrong, not how many schedules there are).
#: A queue nobody consumes since STUCK_SINCE: 5- and 15-minute schedules whose occurrences
#: since then wait (a quarter of them never published: pending).
STUCK = 240
STUCK_SINCE = timedelta(minutes=20)
#: ... of which these have a grace of an hour (not late yet) ...
STUCK_PATIENT = 40
#: ... and these do not alert on missed runs.
STUCK_SILENT = 20
#: A grace of 60 s, their queue stuck for four minutes.
EAGER = 40
EAGER_SINCE = timedelta(minutes=4)
#: Beat behind on them: their beat entry still due BEHIND_SINCE ago, no runs since.
BEHIND = 30
BEHIND_SINCE = timedelta(minutes=10)
#: Hourly schedules with a run hung for up to 90 minutes: a maximum runtime of 10 minutes
#: (too long), or of two hours (not yet).
HUNG = 25
HUNG_OK = 25
HUNG_SINCE = timedelta(minutes=90)
#: Schedules per long job (20-80 minutes, no maximum runtime: read, never too long).
LONG_EVERY = 200
#: Schedules per unrelated policy override (a failure threshold).
OTHER_POLICY_EVERY = 200


# --- the seeded fleet -------------------------------------------------------------------------
@dataclass
class Fleet:
    """What was seeded, and what a pass must find."""

    n: int
    now: datetime
    runs: int = 0
    late_rows: int = 0
    overdue: set[int] = field(default_factory=set)
    unstarted: set[int] = field(default_factory=set)
    too_long: set[int] = field(default_factory=set)
    seed_s: dict[str, float] = field(default_factory=dict)

    @property
    def missed(self) -> set[int]:
        return self.overdue | self.unstarted

    def expected(self) -> dict[str, int]:
        return {
            "overdue": len(self.overdue),
            "unstarted": len(self.unstarted),
            "missed": len(self.missed),
            "too_long": len(self.too_long),
        }


def cron_of(i: int) -> tuple[str, str]:
    kind = KINDS[i % len(KINDS)][0]
    minute, hour = i % 60, (i // 60) % 24
    expr = {
        "5min": f"{i % 5}-59/5 * * * *",
        "15min": f"{i % 15}-59/15 * * * *",
        "hourly": f"{minute} * * * *",
        "daily": f"{minute} {hour} * * *",
        "weekdays": f"{minute} {hour} * * 1-5",
    }[kind]
    return kind, expr


def zone_of(i: int) -> str:
    return ZONES[(i // len(KINDS)) % len(ZONES)]


def jitter_of(i: int) -> int:
    return 120 if (i // 60) % 25 == 7 else 0


@dataclass
class Trouble:
    stuck: set[int]
    stuck_pending: set[int]
    patient: set[int]
    silent: set[int]
    eager: set[int]
    behind: set[int]
    hung: set[int]
    hung_ok: set[int]
    long_jobs: set[int]
    other_policy: set[int]


def pick_trouble(n: int, rng: random.Random) -> Trouble:
    by_kind: dict[str, list[int]] = {}
    for i in range(n):
        by_kind.setdefault(KINDS[i % len(KINDS)][0], []).append(i)
    frequent = by_kind["5min"] + by_kind["15min"]
    behind = set(rng.sample(by_kind["5min"], BEHIND))
    rest = [i for i in frequent if i not in behind]
    chosen = rng.sample(rest, STUCK + EAGER)
    stuck, eager = chosen[:STUCK], set(chosen[STUCK:])
    hourly = rng.sample(by_kind["hourly"], HUNG + HUNG_OK)
    taken = behind | set(chosen) | set(hourly)
    slow_pool = [i for i in by_kind["hourly"] + by_kind["daily"] if i not in taken]
    long_jobs = set(rng.sample(slow_pool, max(1, n // LONG_EVERY)))
    taken |= long_jobs
    other_pool = [i for i in range(n) if i not in taken]
    return Trouble(
        stuck=set(stuck),
        stuck_pending=set(stuck[::4]),
        patient=set(stuck[1 : 1 + STUCK_PATIENT]),
        silent=set(stuck[1 + STUCK_PATIENT : 1 + STUCK_PATIENT + STUCK_SILENT]),
        eager=eager,
        behind=behind,
        hung=set(hourly[:HUNG]),
        hung_ok=set(hourly[HUNG:]),
        long_jobs=long_jobs,
        other_policy=set(rng.sample(other_pool, max(1, n // OTHER_POLICY_EVERY))),
    )


def policies(t: Trouble) -> dict[int, dict[str, Any]]:
    """Schedule index -> AlertPolicy overrides."""
    out: dict[int, dict[str, Any]] = {i: {"failure_threshold": 3} for i in t.other_policy}
    out.update({i: {"grace": 3600} for i in t.patient})
    out.update({i: {"on_missed": False} for i in t.silent})
    out.update({i: {"grace": 60} for i in t.eager})
    out.update({i: {"max_runtime": 600} for i in t.hung})
    out.update({i: {"max_runtime": 7200} for i in t.hung_ok})
    return out


def seed_schedules(n: int) -> list[Any]:
    """``n`` schedules laid out as ``scheduler.schedules.periodic.save_schedule`` does
    (crontab in the schedule's zone, task named ``schedule:<id>:<name>`` with the schedule
    header), with bulk_create; ids are given, so the rows point at each other without a second
    write."""
    from django.db import connection, transaction
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    from jobs_catalog.models import JobDefinition
    from scheduler.policies import cron
    from scheduler.schedules.models import Schedule

    jobs = {d.name: d for d in JobDefinition.objects.filter(name__in=JOBS)}
    if Schedule.objects.exists() or PeriodicTask.objects.exists():
        raise RuntimeError("the database already has schedules")
    schedules = []
    with transaction.atomic():
        crontabs, tasks = [], []
        for i in range(n):
            expression = cron.parse(cron_of(i)[1])
            crontabs.append(
                CrontabSchedule(
                    id=i + 1,
                    minute=expression.minute,
                    hour=expression.hour,
                    day_of_month=expression.day_of_month,
                    month_of_year=expression.month,
                    day_of_week=expression.day_of_week,
                    timezone=zone_of(i),
                )
            )
            name = f"{TEAMS[i % len(TEAMS)]}-{i:06d}"
            job = JOBS[i % len(JOBS)]
            tasks.append(
                PeriodicTask(
                    id=i + 1,
                    name=f"schedule:{i + 1}:{name}",
                    task=job,
                    crontab_id=i + 1,
                    args="[]",
                    kwargs="{}",
                    headers=json.dumps({"schedule_id": i + 1}),
                    enabled=True,
                )
            )
            schedules.append(
                Schedule(
                    id=i + 1,
                    name=name,
                    job=jobs[job],
                    cron=expression.expr,
                    timezone=zone_of(i),
                    params={},
                    jitter=jitter_of(i),
                    periodic_task_id=i + 1,
                )
            )
        CrontabSchedule.objects.bulk_create(crontabs, batch_size=database.SEED_BATCH)
        PeriodicTask.objects.bulk_create(tasks, batch_size=database.SEED_BATCH)
        Schedule.objects.bulk_create(schedules, batch_size=database.SEED_BATCH)
        with connection.cursor() as cursor:
            for model in (CrontabSchedule, PeriodicTask, Schedule):
                table = model._meta.db_table
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        PeriodicTasks.update_changed()
    return schedules


def seed_policies_and_channel(t: Trouble) -> None:
    from scheduler.alerts.models import AlertChannel, AlertPolicy

    AlertPolicy.objects.bulk_create(
        [AlertPolicy(schedule_id=i + 1, **fields) for i, fields in sorted(policies(t).items())],
        batch_size=database.SEED_BATCH,
    )
    # Where alerts go (the alert task would send them; no worker runs here).
    AlertChannel.objects.create(
        name="on-call", kind="webhook", url="http://127.0.0.1:9/hook", is_default=True
    )


def fires_by_key(n: int, now: datetime, history: int) -> dict[tuple[str, str], list[datetime]]:
    """The last ``history`` fire times at or before ``now`` of every (cron, zone) in use, by
    the platform's own cron engine."""
    from scheduler.policies import cron

    reaches = dict(KINDS)
    out: dict[tuple[str, str], list[datetime]] = {}
    for i in range(n):
        kind, expr = cron_of(i)
        key = (expr, zone_of(i))
        if key not in out:
            reach = reaches[kind] * max(1, history / 8)
            fires = cron.fire_times(expr, key[1], now - reach, now)
            if len(fires) < history:
                raise RuntimeError(f"{key}: {len(fires)} fires in {reach}, need {history}")
            out[key] = fires[-history:]
    return out


RUN_COLUMNS = (
    "schedule_id, periodic_task_id, task_name, scheduled_for, trigger, status, attempt, "
    "max_attempts, note, task_id, queue, params, args, created_at, published_at, started_at, "
    "finished_at, duration, queue_wait, worker_host, worker_pid, result, error_type, "
    "error_message, traceback, logs"
)


def _ts(moment: datetime | None) -> str:
    return "\\N" if moment is None else moment.isoformat()


def runs_of(
    fleet: Fleet, t: Trouble, fires: dict[tuple[str, str], list[datetime]], rng: random.Random
) -> Iterator[str]:
    """COPY lines of every schedule's history; fills in what a pass must find."""
    from scheduler.alerts import effective as config
    from scheduler.policies.jitter import jitter_offset

    now = fleet.now
    overrides = policies(t)
    defaults = config.defaults()
    min_grace = min(defaults.grace, *(p.get("grace", defaults.grace) for p in overrides.values()))
    task_ids = iter(range(1, 1 << 62))
    base = uuid.UUID(int=rng.getrandbits(64) << 64).int
    for i in range(fleet.n):
        sid = i + 1
        grace = overrides.get(i, {}).get("grace", defaults.grace)
        on_missed = overrides.get(i, {}).get("on_missed", defaults.on_missed)
        max_runtime = overrides.get(i, {}).get("max_runtime", defaults.max_runtime)
        offset = jitter_offset(sid, jitter_of(i))
        job = JOBS[i % len(JOBS)]
        took = rng.uniform(1200, 4800) if i in t.long_jobs else rng.uniform(0.3, 20)
        for fire in fires[(cron_of(i)[1], zone_of(i))]:
            due = fire + offset
            if due > now:
                continue  # beat has not sent it yet
            if i in t.behind and fire >= now - BEHIND_SINCE:
                continue  # beat is behind: not sent
            started = due + timedelta(seconds=0.2)
            finished = started + timedelta(seconds=took)
            if i in t.stuck and fire >= now - STUCK_SINCE:
                status = "pending" if i in t.stuck_pending else "queued"
            elif i in t.eager and fire >= now - EAGER_SINCE:
                status = "queued"
            elif (i in t.hung or i in t.hung_ok) and fire >= now - HUNG_SINCE:
                status = "running"
            elif started > now:
                status = "queued"
            elif finished > now:
                status = "running"
            else:
                r = rng.random()
                status = (
                    "failed"
                    if r < 0.03
                    else "timed_out"
                    if r < 0.035
                    else "skipped"
                    if r < 0.045
                    else "succeeded"
                )
            if status in ("pending", "queued"):
                if due < now - timedelta(seconds=min_grace):
                    fleet.late_rows += 1
                if on_missed and now - due > timedelta(seconds=grace):
                    fleet.unstarted.add(sid)
            if (
                status == "running"
                and max_runtime
                and now - started > timedelta(seconds=max_runtime)
            ):
                fleet.too_long.add(sid)
            has_start = status not in ("pending", "queued", "skipped")
            has_end = has_start and status != "running"
            failed = status in ("failed", "timed_out")
            fleet.runs += 1
            yield "\t".join(
                (
                    str(sid),
                    str(sid),
                    job,
                    _ts(fire),
                    "beat",
                    status,
                    "1",
                    "3",
                    "",
                    str(uuid.UUID(int=base + next(task_ids))),
                    "",
                    "{}",
                    "[]",
                    _ts(due),
                    "\\N" if status == "pending" else _ts(due + timedelta(seconds=0.05)),
                    _ts(started) if has_start else "\\N",
                    _ts(finished) if has_end else "\\N",
                    f"{took:.3f}" if has_end else "\\N",
                    "0.15" if has_start else "\\N",
                    f"worker-{sid % 8}" if has_start else "",
                    str(1000 + sid % 50) if has_start else "\\N",
                    '{"status": 200}' if status == "succeeded" else "",
                    "ConnectionError" if failed else "",
                    "[Errno 111] Connection refused" if failed else "",
                    "",
                    f"INFO jobs.{job}: run of schedule {sid}",
                )
            )
            yield "\n"


def seed_runs(
    fleet: Fleet, t: Trouble, fires: dict[tuple[str, str], list[datetime]], rng: random.Random
) -> None:
    """The run history with COPY; the secondary indexes are dropped for the load and built
    afterwards (as a restore does), then VACUUM ANALYZE."""
    import psycopg
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'scheduler_jobrun' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        raw = cursor.cursor  # psycopg's own cursor
        with raw.copy(f"COPY scheduler_jobrun ({RUN_COLUMNS}) FROM STDIN") as copy:
            chunk: list[str] = []
            for part in runs_of(fleet, t, fires, rng):
                chunk.append(part)
                if len(chunk) >= 20_000:
                    copy.write("".join(chunk))
                    chunk = []
            copy.write("".join(chunk))
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            cursor.execute(definition)
    connection.close()
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def seed_entries(fleet: Fleet, t: Trouble, fires: dict[tuple[str, str], list[datetime]]) -> None:
    """Beat entries as beat's start-up makes them (next fire after now), then the entries beat
    is behind on: still due at their first fire since BEHIND_SINCE."""
    from scheduler.alerts import effective as config
    from scheduler.beat import entries
    from scheduler.beat.models import BeatEntry
    from scheduler.policies.jitter import jitter_offset

    entries.reconcile(fleet.now)
    grace = config.defaults().grace
    for i in sorted(t.behind):
        sid = i + 1
        first = min(f for f in fires[(cron_of(i)[1], zone_of(i))] if f >= fleet.now - BEHIND_SINCE)
        due = first + jitter_offset(sid, jitter_of(i))
        BeatEntry.objects.filter(pk=sid).update(next_fire_at=first, due_at=due)
        if fleet.now - due > timedelta(seconds=grace):
            fleet.overdue.add(sid)


def seed(n: int, now: datetime, history: int) -> Fleet:
    rng = random.Random(n)
    fleet = Fleet(n=n, now=now)
    trouble = pick_trouble(n, rng)
    started = time.perf_counter()
    seed_schedules(n)
    seed_policies_and_channel(trouble)
    fleet.seed_s["schedules"] = time.perf_counter() - started
    started = time.perf_counter()
    fires = fires_by_key(n, now, history)
    fleet.seed_s["fire_times"] = time.perf_counter() - started
    started = time.perf_counter()
    seed_entries(fleet, trouble, fires)
    fleet.seed_s["beat_entries"] = time.perf_counter() - started
    started = time.perf_counter()
    seed_runs(fleet, trouble, fires, rng)
    fleet.seed_s["runs"] = time.perf_counter() - started
    if fleet.late_rows >= BATCH:
        raise RuntimeError(f"{fleet.late_rows} late runs: more than a pass reads ({BATCH})")
    return fleet


# --- the baseline: every schedule's cron, every pass -------------------------------------------
def per_schedule_scan(now: datetime) -> tuple[dict[int, Any], list[Any]]:
    """The obvious watchdog: for each enabled schedule, its latest occurrence that should have
    started by now (croniter in its zone, its grace and jitter), and whether any occurrence at
    or after it started (one batched read of each schedule's latest handled run); and every
    running run held against its schedule's maximum runtime."""
    from zoneinfo import ZoneInfo

    from croniter import croniter
    from django.db.models import Max

    from scheduler.alerts import effective as config
    from scheduler.alerts import evaluate, rules
    from scheduler.alerts.models import AlertPolicy
    from scheduler.policies.jitter import jitter_offset
    from scheduler.runs.models import JobRun
    from scheduler.schedules.models import Schedule

    status = JobRun.Status
    defaults = config.defaults()
    overrides = {row.pk: config.effective(row) for row in AlertPolicy.objects.all()}
    handled = dict(
        JobRun.objects.filter(attempt=1, schedule__isnull=False)
        .exclude(status__in=[status.PENDING, status.QUEUED])
        .values("schedule_id")
        .annotate(last=Max("scheduled_for"))
        .values_list("schedule_id", "last")
    )
    schedules = Schedule.objects.filter(enabled=True, paused_at__isnull=True).values_list(
        "pk", "cron", "timezone", "jitter"
    )
    missing = {}
    for sid, expr, zone, jitter in schedules.iterator(chunk_size=5000):
        policy = overrides.get(sid, defaults)
        if not policy.on_missed:
            continue
        offset = jitter_offset(sid, jitter) if jitter else timedelta(0)
        # The latest occurrence due (jitter included) more than the grace period ago.
        latest = now - timedelta(seconds=policy.grace) - offset
        due = croniter(expr, latest.astimezone(ZoneInfo(zone))).get_prev(datetime)
        last = handled.get(sid)
        if last is None or last < due:
            missing[sid] = evaluate.Missing(sid, f"due at {due:%Y-%m-%d %H:%M:%S} and not started")
    running = JobRun.objects.filter(status=status.RUNNING, schedule__isnull=False).only(
        "id", "schedule_id", "started_at", "finished_at", "scheduled_for", "status", "attempt"
    )
    long = [
        run
        for run in running
        if run.started_at
        and rules.is_too_long(overrides.get(run.schedule_id, defaults), run.started_at, now)
    ]
    return missing, long


def baseline_checks(now: datetime) -> Any:
    """A pass with the per-schedule scan in place of the watchdog's indexed reads; incidents,
    deliveries and the sweep as in ``run_checks``."""
    from scheduler.alerts import watchdog

    found: dict[str, Any] = {}

    def scan(now_: datetime, min_grace: int) -> dict[int, Any]:
        found["missing"], found["long"] = per_schedule_scan(now_)
        return found["missing"]

    with (
        mock.patch.object(watchdog, "_overdue_entries", scan),
        mock.patch.object(watchdog, "_unstarted_runs", lambda now_, grace: {}),
        mock.patch.object(watchdog, "_running_long", lambda now_: found["long"]),
    ):
        report = watchdog.run_checks(now)
    report.found = set(found["missing"]), {r.schedule_id for r in found["long"]}
    return report


def ours_checks(now: datetime) -> Any:
    from scheduler.alerts import watchdog

    return watchdog.run_checks(now)


# --- measuring --------------------------------------------------------------------------------
class DatabaseTimer:
    """Time spent in the database driver (query sent, run, rows received)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.statements = 0

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.statements += 1


@dataclass
class Pass:
    ms: float
    db_ms: float
    statements: int
    report: Any


def timed(check: Callable[[datetime], Any], now: datetime) -> Pass:
    from django.db import connection

    timer = DatabaseTimer()
    with connection.execute_wrapper(timer):
        started = time.perf_counter()
        report = check(now)
        ms = (time.perf_counter() - started) * 1000
    return Pass(ms, timer.seconds * 1000, timer.statements, report)


def queries_of(check: Callable[[datetime], Any], now: datetime) -> list[str]:
    """The SQL of one (untimed) pass."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        check(now)
    return [q["sql"] for q in captured.captured_queries]


def reads(sql: list[str]) -> list[str]:
    """The statements, without transaction and savepoint markers."""
    markers = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK")
    return [q for q in sql if not q.lstrip().upper().startswith(markers)]


def reset_incidents() -> None:
    """Back to before the first pass: no incidents, no deliveries."""
    from scheduler.alerts.models import AlertDelivery, Incident

    AlertDelivery.objects.all().delete()
    Incident.objects.all().delete()


def deliveries_sent(now: datetime) -> None:
    """What the alert task would do with the deliveries a pass queued (no worker runs here),
    so later passes do not find them unsent."""
    from scheduler.alerts.models import AlertDelivery

    AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING).update(
        status=AlertDelivery.Status.SENT, sent_at=now, attempts=1
    )


def wait_quiet(path: str | None) -> None:
    """Hold heavy work while ``path`` exists (someone else measures on this machine)."""
    if not path:
        return
    announced = False
    while Path(path).exists():
        if not announced:
            log(f"{path} exists: waiting (polling every 20 s)")
            announced = True
        time.sleep(20)
    if announced:
        log(f"{path} is gone: going on")


def summary(passes: list[Pass]) -> dict[str, Any]:
    ms = [p.ms for p in passes]
    db = [p.db_ms for p in passes]
    py = [p.ms - p.db_ms for p in passes]
    return {
        "passes": len(passes),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(percentile(ms, 0.95), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "db_median_ms": round(statistics.median(db), 2),
        "python_median_ms": round(statistics.median(py), 2),
        "statements": statistics.median_low([p.statements for p in passes]),
        "each_ms": [round(v, 1) for v in ms],
    }


def found_of(report: Any) -> dict[str, int]:
    return {
        "overdue": report.overdue,
        "unstarted": report.unstarted,
        "alerted_missed": report.alerted_missed,
        "too_long": report.too_long,
        "resolved": report.resolved,
        "requeued": report.requeued,
    }


def check_found(case: str, report: Any, fleet: Fleet, first: bool, storm: bool) -> None:
    """The pass found exactly what was seeded (else it measured something else)."""
    want = fleet.expected()
    got = found_of(report)
    problems = []
    if case == "baseline":
        missing, long = report.found
        if missing != fleet.missed:
            problems.append(
                f"missed: {len(missing)} found, {len(fleet.missed)} seeded, "
                f"{len(missing ^ fleet.missed)} differ"
            )
        if long != fleet.too_long:
            problems.append(f"too long: {len(long)} found, {len(fleet.too_long)} seeded")
    else:
        for key in ("overdue", "unstarted"):
            if got[key] != want[key]:
                problems.append(f"{key}: {got[key]} found, {want[key]} seeded")
    if got["too_long"] != want["too_long"]:
        problems.append(f"too_long: {got['too_long']} reported, {want['too_long']} seeded")
    # Open per-schedule incidents are not counted again; a storm is counted on every pass.
    alerted = want["missed"] if first or storm else 0
    if got["alerted_missed"] != alerted:
        problems.append(f"alerted_missed: {got['alerted_missed']}, expected {alerted}")
    if got["resolved"] or got["requeued"]:
        problems.append(f"resolved {got['resolved']}, requeued {got['requeued']}: expected 0")
    if problems:
        raise AssertionError(f"{case} at {fleet.n} schedules: " + "; ".join(problems))


def incident_counts() -> dict[str, int]:
    from django.db.models import Count

    from scheduler.alerts.models import AlertDelivery, Incident

    by_kind = dict(
        Incident.objects.filter(resolved_at__isnull=True)
        .values("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
    )
    platform = Incident.objects.filter(schedule__isnull=True, resolved_at__isnull=True).count()
    return {
        "open_missed": by_kind.get("missed", 0),
        "open_too_long": by_kind.get("too_long", 0),
        "platform": platform,
        "deliveries": AlertDelivery.objects.count(),
    }


@contextmanager
def storm_threshold(value: int | None) -> Iterator[None]:
    from django.conf import settings

    saved = settings.ALERTS_STORM_THRESHOLD
    if value is not None:
        settings.ALERTS_STORM_THRESHOLD = value
    try:
        yield
    finally:
        settings.ALERTS_STORM_THRESHOLD = saved


def explain(sql_list: list[str]) -> str:
    from django.db import connection

    lines = []
    with connection.cursor() as cursor:
        for sql in reads(sql_list):
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
            lines.append(sql[:300] + "\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return "\n---\n".join(lines)


@dataclass
class Mode:
    """How incidents are opened: the default storm threshold (a few hundred schedules missing
    at once is one platform incident) or one incident per schedule."""

    name: str
    storm_threshold: int | None


MODES = (Mode("ours", None), Mode("ours_per_schedule", 0))


def measure_size(opts: argparse.Namespace, fleet: Fleet, context: dict) -> list[dict]:
    from django.conf import settings

    from scheduler.alerts import effective as config

    now = fleet.now
    interval = settings.ALERTS_WATCHDOG_INTERVAL
    common = {
        "schedules": fleet.n,
        "runs": fleet.runs,
        "expected": fleet.expected(),
        "interval_s": interval,
        "target_ms": TARGET_MS,
        "seed_s": {k: round(v, 1) for k, v in fleet.seed_s.items()},
        **context,
    }
    results = []
    steady_ours = None
    for mode in MODES:
        storm = mode.storm_threshold is None and settings.ALERTS_STORM_THRESHOLD > 0
        storm = storm and len(fleet.missed) > settings.ALERTS_STORM_THRESHOLD
        with storm_threshold(mode.storm_threshold):
            wait_quiet(opts.pause_while)
            # The per-process cache warm, the broker connected: one pass, then start over.
            config.min_grace(), config.min_max_runtime(), config.cached_channels()
            ours_checks(now)
            host0, load0 = host_cpu(), os.getloadavg()[0]
            first = []
            for _ in range(opts.first_passes):
                reset_incidents()
                done = timed(ours_checks, now)
                check_found(mode.name, done.report, fleet, first=True, storm=storm)
                deliveries_sent(now)
                first.append(done)
            opened = incident_counts()
            steady = []
            for _ in range(opts.passes):
                done = timed(ours_checks, now)
                check_found(mode.name, done.report, fleet, first=False, storm=storm)
                steady.append(done)
            host1 = host_cpu()
            sql = queries_of(ours_checks, now)
            reset_incidents()
            sql_first = queries_of(ours_checks, now)
            deliveries_sent(now)
            for label, passes in (("first", first), ("steady", steady)):
                stats = summary(passes)
                result = {
                    "case": f"{mode.name}_{label}",
                    **common,
                    **stats,
                    "queries": len(reads(sql if label == "steady" else sql_first)),
                    "found": found_of(passes[-1].report),
                    "incidents": opened if label == "first" else incident_counts(),
                    "interval_fraction": round(stats["median_ms"] / (interval * 1000), 5),
                    "target": TARGET,
                    "target_met": stats["median_ms"] < TARGET_MS,
                    "host_cpu_percent": host_busy(host0, host1),
                    "loadavg_1m": round(load0, 2),
                }
                results.append(result)
                log(
                    f"{fleet.n} schedules, {result['case']}: median {stats['median_ms']} ms "
                    f"(db {stats['db_median_ms']}), p95 {stats['p95_ms']} ms, "
                    f"{stats['statements']} statements"
                )
                if mode.name == "ours" and label == "steady":
                    steady_ours = result
            if opts.explain and mode.name == "ours":
                log(f"EXPLAIN ANALYZE, steady pass at {fleet.n}:\n{explain(sql)}")
    if opts.baseline_passes:
        # Incidents as the steady-state ours left them (default mode): the same bookkeeping.
        wait_quiet(opts.pause_while)
        reset_incidents()
        ours_checks(now)
        deliveries_sent(now)
        storm = len(fleet.missed) > settings.ALERTS_STORM_THRESHOLD > 0
        host0, load0 = host_cpu(), os.getloadavg()[0]
        passes = []
        for _ in range(opts.baseline_passes):
            done = timed(baseline_checks, now)
            check_found("baseline", done.report, fleet, first=False, storm=storm)
            passes.append(done)
        host1 = host_cpu()
        stats = summary(passes)
        baseline = {
            "case": "baseline_per_schedule",
            **common,
            **stats,
            "queries": len(reads(queries_of(baseline_checks, now))),
            "found": {
                "missed": len(passes[-1].report.found[0]),
                "too_long": passes[-1].report.too_long,
            },
            "interval_fraction": round(stats["median_ms"] / (interval * 1000), 5),
            "target_met": None,  # the target is ours
            "host_cpu_percent": host_busy(host0, host1),
            "loadavg_1m": round(load0, 2),
        }
        log(
            f"{fleet.n} schedules, baseline: median {stats['median_ms']} ms "
            f"(db {stats['db_median_ms']}), {stats['statements']} statements"
        )
        for result in results:
            result["baseline_median_ms"] = stats["median_ms"]
            result["speedup"] = round(stats["median_ms"] / result["median_ms"], 1)
        results.append(baseline)
    if steady_ours is not None:
        log(f"{fleet.n} schedules: {steady_ours['case']} {steady_ours.get('speedup')}x baseline")
    return results


# --- output -----------------------------------------------------------------------------------
COLUMNS = (
    ("schedules", "schedules", "{}"),
    ("case", "case", "{}"),
    ("passes", "passes", "{}"),
    ("median_ms", "median ms", "{:.1f}"),
    ("p95_ms", "p95 ms", "{:.1f}"),
    ("max_ms", "max ms", "{:.1f}"),
    ("db_median_ms", "db ms", "{:.1f}"),
    ("python_median_ms", "python ms", "{:.1f}"),
    ("statements", "stmts", "{}"),
    ("queries", "queries", "{}"),
    ("interval_fraction", "of interval", "{:.2%}"),
    ("speedup", "speedup", "{:.0f}x"),
    ("target_met", "< 100 ms", "{}"),
)


def table(results: list[dict]) -> str:
    lines = tables.render(results, COLUMNS, left={1})
    for r in results:
        if r["case"] == "ours_first":
            lines.append(
                f"\n{r['schedules']} schedules, {r['runs']} runs: a pass must find "
                f"{r['expected']}; found {r['found']}"
            )
    if results:
        lines.append(f"\ntarget: {TARGET}; interval {results[0]['interval_s']} s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.watchdog", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--schedules", type=int, default=100_000, help="N (default 100000)")
    parser.add_argument(
        "--scale",
        help="comma-separated sizes to run, smallest first (default: 10000 and --schedules; "
        "'none': --schedules only)",
    )
    parser.add_argument("--history", type=int, default=8, help="runs per schedule (8)")
    parser.add_argument("--passes", type=int, default=20, help="steady-state passes timed (20)")
    parser.add_argument(
        "--first-passes", type=int, default=5, help="first passes timed, from no incidents (5)"
    )
    parser.add_argument(
        "--baseline-passes", type=int, default=3, help="baseline passes timed (3; 0: none)"
    )
    parser.add_argument("--explain", action="store_true", help="log EXPLAIN ANALYZE of a pass")
    parser.add_argument(
        "--pause-while",
        metavar="PATH",
        help="before each heavy step, wait while PATH exists (someone else is measuring)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout, table on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    database.add_server_arguments(parser, "bench_wd", redis_db=5)
    opts = parser.parse_args(argv)
    if opts.scale == "none":
        sizes = [opts.schedules]
    elif opts.scale:
        sizes = sorted({int(s) for s in opts.scale.split(",") if s.strip()})
    else:
        sizes = sorted({min(10_000, opts.schedules), opts.schedules})
    if min(sizes) < 2000:
        parser.error("at least 2000 schedules (the seeded trouble needs room)")
    if opts.passes < 1 or opts.first_passes < 1 or opts.history < 2:
        parser.error("--passes and --first-passes must be positive, --history at least 2")
    opts.sizes = sizes
    return opts


def machine() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    return {"machine": f"{os.cpu_count()} cores", "postgresql": version}


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    version = code_version()
    dbs = Databases(opts.database_server, opts.database)
    env = database.django_env(dbs.url(), opts.redis)
    env["JOBS_HISTORY_PRUNE_CRON"] = ""  # only the seeded schedules
    os.environ.update(env)
    os.environ["DATABASE_POOL"] = "false"  # this process drops its database at the end
    import django

    django.setup()
    database.flush_redis(opts.redis)
    failed = False
    results: list[dict] = []
    try:
        log(f"code {version}; migrating {dbs.template}")
        dbs.create_template(env)
        for n in opts.sizes:
            wait_quiet(opts.pause_while)
            dbs.fresh()
            # A whole minute plus 30.5 s: no fire time is ever exactly a grace period ago.
            now = datetime.now(UTC).replace(second=30, microsecond=500_000)
            started = time.time()
            fleet = seed(n, now, opts.history)
            log(
                f"seeded {n} schedules, {fleet.runs} runs in {time.time() - started:.0f} s "
                f"({', '.join(f'{k} {v:.0f} s' for k, v in fleet.seed_s.items())}); "
                f"a pass must find {fleet.expected()}"
            )
            context = {"code": version, **machine(), "history": opts.history}
            gc.collect()  # the seeding's garbage is not the watchdog's
            results += measure_size(opts, fleet, context)
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        if not opts.keep:
            dbs.drop_all()
        database.flush_redis(opts.redis)
    print("\n" + table(results), file=sys.stderr if opts.json else sys.stdout)
    if opts.json:
        for result in results:
            print(json.dumps(result, default=str), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
