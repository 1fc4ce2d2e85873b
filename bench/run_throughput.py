"""Run throughput, end to end: queued runs through a real ``celery worker -c 2`` on Redis and
PostgreSQL, with full run history, against plain Celery tasks.

    python -m bench.run_throughput [--runs 5000] [--rounds 3] [--json]

Cases, all in one run, each on a fresh copy of one migrated database and an empty queue:

- ``bare``: a plain no-op Celery task, results ignored: what Celery itself costs.
- ``django-celery-results``: the same task with django-celery-results' ``django-db`` result
  backend: the usual way to get a record of every task.
- ``ours``: a no-op catalog job, queued as the platform queues runs (a JobRun row committed,
  then published); the worker records start and end of every run in the history.

The runs are queued first, then the worker starts; the time is from the first run's start to
the last run's end (the worker's boot is not counted), read from a per-process counter file
written by a ``task_postrun`` handler every case has (``bench/throughput_app/tasks.py``).
Rounds alternate between the cases; the median is reported. With ``--json`` one JSON object
per case goes to stdout: ``case``, its figures, and the bare task's beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import database
from bench.beat_dispatch import log
from bench.procs import ROOT, Child, host_busy, host_cpu, stop_all

CASES = ("bare", "django-celery-results", "ours")
TASKS = {"bare": "bench.noop", "django-celery-results": "bench.noop_stored"}
TARGET = 0.7  # ours / bare
QUEUE = "bench_runs"
SETTINGS = "bench.throughput_settings"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_throughput")
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    database.add_server_arguments(parser, "bench_runs", redis_db=13)
    opts = parser.parse_args(argv)

    dbs = database.Databases(opts.database_server, opts.database)
    workdir = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    env = {
        **database.django_env(dbs.url(), opts.redis),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATA_DIR": str(workdir),
    }
    os.environ.update(env)  # this process uses Django too (to reset the database)
    import django

    django.setup()
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    try:
        log("migrating the template database")
        dbs.create_template(env)
        for round_ in range(opts.rounds):
            for case in CASES:
                dbs.fresh()
                database.flush_redis(opts.redis)
                result = run_case(case, opts, env, workdir / f"{round_}-{case}")
                log(
                    f"round {round_ + 1} {case}: {result['runs']} runs in "
                    f"{result['seconds']:.2f}s = {result['per_s']:.0f}/s; "
                    f"records {result['records']}"
                )
                results[case].append(result)
    finally:
        stop_all()
        try:
            dbs.drop_all()
            database.flush_redis(opts.redis)
        except Exception as exc:  # cleanup must not hide the run's own error
            log(f"cleanup failed: {exc!r}")
        shutil.rmtree(workdir, ignore_errors=True)

    summary = {case: summarise(case, rounds) for case, rounds in results.items()}
    bare = summary["bare"]["per_s"]
    for case, row in summary.items():
        row["ratio_to_bare"] = round(row["per_s"] / bare, 3) if bare else None
        row["bare_per_s"] = bare
        row["target"] = f">= {TARGET}x bare" if case == "ours" else None
        row["target_met"] = (row["ratio_to_bare"] or 0) >= TARGET if case == "ours" else None
    print_table(summary)
    if opts.json:
        for row in summary.values():
            print(json.dumps(row))
    return 0


def run_case(case: str, opts: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict:
    workdir.mkdir(parents=True)
    counts = workdir / "counts"
    counts.mkdir()
    case_env = {**env, "BENCH_COUNT_DIR": str(counts)}
    if case == "django-celery-results":
        case_env["BENCH_RESULTS"] = "django-db"
    queue(case, opts.runs, case_env)
    host_start = host_cpu()
    worker = Child(
        f"worker-{case}",
        [
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-c",
            str(opts.concurrency),
            "-Q",
            QUEUE,
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
            "-n",
            f"bench-{case}@%h",
        ],
        case_env,
        workdir / "worker.out",
    )
    try:
        deadline = time.time() + max(120.0, opts.runs / 20)
        done = 0
        while time.time() < deadline:
            if not worker.alive():
                raise RuntimeError(f"the worker exited early:\n{worker.tail()}")
            spans = read_counts(counts)
            done = sum(c for _, _, c in spans)
            if done >= opts.runs:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{case}: {done}/{opts.runs} runs after the time limit")
        cpu = worker.cpu_seconds()
        host_end = host_cpu()
    finally:
        worker.stop()
    spans = read_counts(counts)
    first = min(s for s, _, _ in spans)
    last = max(e for _, e, _ in spans)
    return {
        "runs": sum(c for _, _, c in spans),
        "seconds": last - first,
        "per_s": opts.runs / (last - first),
        "worker_cpu_s": cpu,
        "host_cpu_percent": host_busy(host_start, host_end),
        "records": count_records(case, case_env),
    }


def queue(case: str, runs: int, env: dict[str, str]) -> None:
    """Put ``runs`` messages on the queue, in a subprocess set up like any client."""
    subprocess.run(
        [sys.executable, "-m", "bench.run_throughput_queue", case, str(runs), QUEUE],
        cwd=ROOT,
        env=env,
        check=True,
    )


def read_counts(directory: Path) -> list[tuple[float, float, int]]:
    spans = []
    for path in directory.iterdir():
        text = path.read_text().strip()
        if text:
            first, last, count = text.split()
            spans.append((float(first), float(last), int(count)))
    return spans


def count_records(case: str, env: dict[str, str]) -> dict:
    """What each case left in the database: its proof of a record per run."""
    query = {
        "bare": "SELECT 0",
        "django-celery-results": (
            "SELECT count(*) FROM django_celery_results_taskresult WHERE status = 'SUCCESS'"
        ),
        "ours": "SELECT count(*) FROM scheduler_jobrun WHERE status = 'succeeded'",
    }[case]
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        (count,) = conn.execute(query).fetchone()
    return count


def summarise(case: str, rounds: list[dict]) -> dict:
    rates = [r["per_s"] for r in rounds]
    return {
        "case": case,
        "runs": rounds[0]["runs"],
        "rounds": len(rounds),
        "per_s": round(statistics.median(rates), 1),
        "per_s_rounds": [round(r, 1) for r in rates],
        "seconds_median": round(statistics.median(r["seconds"] for r in rounds), 2),
        "worker_cpu_s_median": round(statistics.median(r["worker_cpu_s"] or 0 for r in rounds), 2),
        "host_cpu_percent_median": statistics.median(r["host_cpu_percent"] or 0 for r in rounds),
        "records": [r["records"] for r in rounds],
        "machine": f"{os.cpu_count()} cores",
    }


def print_table(summary: dict[str, dict]) -> None:
    header = f"{'case':<24}{'runs/s':>10}{'x bare':>9}{'rounds':>26}{'records (per round)':>24}"
    lines = [header, "-" * len(header)]
    for case, row in summary.items():
        lines.append(
            f"{case:<24}{row['per_s']:>10.0f}{row['ratio_to_bare'] or 0:>9.2f}"
            f"{row['per_s_rounds']!s:>26}{row['records']!s:>24}"
        )
    ours = summary["ours"]
    lines.append(
        f"\nours: target >= {TARGET}x bare: {'met' if ours['target_met'] else 'MISSED'} "
        f"({ours['ratio_to_bare']}x)"
    )
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
