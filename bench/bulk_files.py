"""Bulk files, end to end: N files served by a local HTTP server, downloaded and archived by a
real ``celery worker``, the platform's way against a plain Celery task written the obvious
way, in the same run.

    python -m bench.bulk_files [--files 500] [--total-mb 600] [--rounds 1] [--json]

Cases, each on a fresh worker (``-c 1``, prefork) and a fresh copy of one migrated database:

- ``ours``: ``builtin.download_files`` (its default concurrency, 4) into a directory, then
  ``builtin.archive_directory`` of it into a zip, both queued as the platform queues runs
  (a JobRun committed, then published), one after the other;
- ``naive``: one plain task (``bench/bulk_files_naive.py``): ``requests.get`` per file and
  ``zipfile`` in memory, written out at the end.

Measured: the wall time from the first message sent to the end seen (the run history for
ours, a marker file for the naive task), and the worker's peak resident memory (VmHWM) of
its pool process (where the jobs run) and of the whole worker, sampled every 0.1 s and read
at the end, plus the tree's peak PSS. The worker's boot is not counted. With ``--json`` one
JSON object per case goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

from bench import database, tables
from bench.beat_dispatch import log
from bench.procs import Child, stop_all

CASES = ("ours", "naive")
QUEUE = "bench_files"
SETTINGS = "bench.bulk_files_settings"
MIB = 1024 * 1024
COLUMNS = [
    ("case", "case", "{}"),
    ("files", "files", "{}"),
    ("total_mb", "MiB", "{:.0f}"),
    ("wall_s", "wall s", "{:.2f}"),
    ("pool_rss_peak_mb", "pool RSS peak MiB", "{:.0f}"),
    ("worker_rss_peak_mb", "worker RSS peak MiB", "{:.0f}"),
    ("pss_peak_mb", "PSS peak MiB", "{:.0f}"),
    ("wall_ratio", "wall / naive", "{:.2f}"),
    ("pool_rss_ratio", "pool RSS / naive", "{:.2f}"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_files")
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--total-mb", type=float, default=600)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    database.add_server_arguments(parser, "bench_files", redis_db=12)
    opts = parser.parse_args(argv)

    dbs = database.Databases(opts.database_server, opts.database)
    workdir = Path(tempfile.mkdtemp(prefix="bench_files_"))
    env = {
        **database.django_env(dbs.url(), opts.redis),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATA_DIR": str(workdir / "data"),
        "JOBS_FILE_ROOTS": str(workdir),
        "JOBS_HTTP_ALLOW": "127.0.0.1",
        "LOG_LEVEL": "INFO",  # the worker's "ready." line
        # One pool process for the whole case: its peak is the job's.
        "CELERY_WORKER_MAX_MEMORY_PER_CHILD": str(100 * 1024 * 1024),
    }
    os.environ.update(env)  # this process queues runs and reads the history through Django
    import django

    django.setup()
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    try:
        served = workdir / "served"
        names = make_files(served, opts.files, int(opts.total_mb * MIB))
        port = free_port()
        server = Child(
            "http-server",
            ["-m", "http.server", "--bind", "127.0.0.1", "--directory", str(served), str(port)],
            env,
            workdir / "http-server.out",
        )
        urls = [f"http://127.0.0.1:{port}/{name}" for name in names]
        wait_listening(port)
        log(f"serving {len(names)} files, {opts.total_mb:g} MiB; migrating the template database")
        dbs.create_template(env)
        for round_ in range(opts.rounds):
            for case in CASES if round_ % 2 == 0 else reversed(CASES):
                dbs.fresh()
                database.flush_redis(opts.redis)
                result = run_case(case, urls, env, workdir / f"{round_}-{case}")
                log(
                    f"round {round_ + 1} {case}: {result['wall_s']:.2f}s, pool RSS peak "
                    f"{result['pool_rss_peak_mb']:.0f} MiB"
                )
                results[case].append(result)
        server.stop()
    finally:
        stop_all()
        try:
            dbs.drop_all()
            database.flush_redis(opts.redis)
        except Exception as exc:  # cleanup must not hide the run's own error
            log(f"cleanup failed: {exc!r}")
        if opts.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = [summarise(case, rounds, opts) for case, rounds in results.items()]
    naive = summary[1]
    for row in summary:
        row["wall_ratio"] = round(row["wall_s"] / naive["wall_s"], 3)
        row["pool_rss_ratio"] = round(row["pool_rss_peak_mb"] / naive["pool_rss_peak_mb"], 3)
    print("\n".join(tables.render(summary, COLUMNS, left={0})), file=sys.stderr)
    if opts.json:
        for row in summary:
            print(json.dumps(row))
    return 0


def make_files(directory: Path, count: int, total: int) -> list[str]:
    """``count`` files of random bytes, ``total`` bytes together (sizes from half to one and a
    half times the mean, so they are not all alike)."""
    directory.mkdir(parents=True)
    weights = [0.5 + (i * 7919 % count) / count for i in range(count)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[-1] += total - sum(sizes)
    names = []
    for i, size in enumerate(sizes):
        name = f"file-{i:05}.bin"
        with (directory / name).open("wb") as out:
            left = size
            while left:
                piece = os.urandom(min(left, 4 * MIB))
                out.write(piece)
                left -= len(piece)
        names.append(name)
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the file server is not listening on port {port}")


# --- one case -------------------------------------------------------------------------------
def run_case(case: str, urls: list[str], env: dict[str, str], workdir: Path) -> dict:
    downloads, archives = workdir / "downloads", workdir / "archives"
    downloads.mkdir(parents=True)
    archives.mkdir()
    worker = Child(
        f"worker-{case}",
        [
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-c",
            "1",
            "-P",
            "prefork",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
            "-n",
            f"bench-files-{case}@%h",
        ],
        env,
        workdir / "worker.out",
    )
    meter = Meter(worker)
    try:
        wait_ready(worker)
        started = time.monotonic()
        if case == "ours":
            details = ours(urls, downloads, archives, meter)
        else:
            details = naive(urls, archives, workdir / "done.json", meter)
        wall = time.monotonic() - started
        meter.sample()
    finally:
        worker.stop()
    entries = check_archive(archives / "all.zip", len(urls))
    return {
        "wall_s": wall,
        **meter.figures(),
        "archive_mb": round((archives / "all.zip").stat().st_size / MIB, 1),
        "entries": entries,
        **details,
    }


def wait_ready(worker: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError(f"the worker exited early:\n{worker.tail()}")
        if "ready." in worker.output.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the worker is not ready after {timeout}s:\n{worker.tail()}")


class Meter:
    """The worker's memory, sampled while it works: each process's peak resident set (a
    pool process replaced meanwhile keeps its figure) and the tree's peak PSS."""

    def __init__(self, worker: Child):
        self.worker = worker
        self.peaks: dict[int, float] = {}

    def sample(self) -> None:
        self.worker.sample_memory()
        for pid in self.worker.tree():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), int(line.split()[1]) / 1024)

    def wait(self, done, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.worker.alive():
                raise RuntimeError(f"the worker exited early:\n{self.worker.tail()}")
            self.sample()
            if done():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what}: not done after {timeout:.0f}s:\n{self.worker.tail()}")

    def figures(self) -> dict:
        main = self.worker.pid
        pool = [mb for pid, mb in self.peaks.items() if pid != main]
        return {
            "pool_rss_peak_mb": round(max(pool, default=0.0), 1),
            "worker_rss_peak_mb": round(sum(self.peaks.values()), 1),
            "pss_peak_mb": round(self.worker.peak_pss_mb or 0.0, 1),
        }


def ours(urls: list[str], downloads: Path, archives: Path, meter: Meter) -> dict:
    from config.celery import app

    timeout = max(300.0, len(urls))
    params = {"directory": str(downloads), "files": urls}
    download = queue_run(app, "builtin.download_files", params)
    meter.wait(lambda: ended(download), "the downloads", timeout)
    archive = queue_run(
        app,
        "builtin.archive_directory",
        {"directory": str(downloads), "destination": str(archives), "name": "all.zip"},
    )
    meter.wait(lambda: ended(archive), "the archive", timeout)
    runs = [last_attempt(download), last_attempt(archive)]
    for run in runs:
        if run.status != "succeeded":
            raise RuntimeError(f"{run.task_name}: {run.status}: {run.error_message}")
    return {"job_s": round(sum(run.duration or 0 for run in runs), 2)}


def queue_run(app, job: str, params: dict):
    """Commit a run of ``job`` and publish it, as "run now" does."""
    from django.utils import timezone

    from jobs_catalog.models import JobDefinition
    from scheduler.clock import SystemClock
    from scheduler.runs.models import JobRun
    from scheduler.runs.outbox import Outbox
    from scheduler.schedules.models import Schedule
    from scheduler.schedules.periodic import save_schedule

    schedule = save_schedule(
        Schedule(
            name=f"bench {job} {uuid.uuid4().hex[:6]}",
            job=JobDefinition.objects.get(name=job),
            params=params,
            cron="0 0 1 1 *",
            queue=QUEUE,
            enabled=False,  # beat is not running; the run is queued here
        )
    )
    [run] = Outbox(app, SystemClock()).enqueue(schedule, [timezone.now()], JobRun.Trigger.MANUAL)
    return run


def last_attempt(first):
    from django.db.models import Q

    from scheduler.runs.models import JobRun

    return JobRun.objects.filter(Q(pk=first.pk) | Q(occurrence=first)).order_by("attempt").last()


def ended(first) -> bool:
    return last_attempt(first).status in ("succeeded", "failed", "timed_out", "lost", "cancelled")


def naive(urls: list[str], archives: Path, done: Path, meter: Meter) -> dict:
    from config.celery import app

    app.send_task(
        "bench.naive_download_and_zip",
        kwargs={"urls": urls, "archive_path": str(archives / "all.zip"), "done_path": str(done)},
        queue=QUEUE,
    )
    meter.wait(done.exists, "the naive task", max(300.0, len(urls)))
    times = json.loads(done.read_text())
    return {"job_s": round(times["finished"] - times["started"], 2)}


def check_archive(path: Path, expected: int) -> int:
    with zipfile.ZipFile(path) as archive:
        entries = len(archive.infolist())
    if entries != expected:
        raise RuntimeError(f"{path}: {entries} entries, expected {expected}")
    return entries


def summarise(case: str, rounds: list[dict], opts: argparse.Namespace) -> dict:
    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 2)

    return {
        "case": case,
        "files": opts.files,
        "total_mb": opts.total_mb,
        "rounds": len(rounds),
        "wall_s": median("wall_s"),
        "wall_s_rounds": [round(r["wall_s"], 2) for r in rounds],
        "job_s": median("job_s"),
        "pool_rss_peak_mb": median("pool_rss_peak_mb"),
        "worker_rss_peak_mb": median("worker_rss_peak_mb"),
        "pss_peak_mb": median("pss_peak_mb"),
        "archive_mb": rounds[0]["archive_mb"],
        "machine": f"{os.cpu_count()} cores",
    }


if __name__ == "__main__":
    sys.exit(main())
