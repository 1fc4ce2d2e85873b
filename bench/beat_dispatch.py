"""Beat dispatch benchmark: our scheduler against django-celery-beat's, on real PostgreSQL and
Redis.

    python -m bench.beat_dispatch --schedules 10000            # burst + two-beats
    python -m bench.beat_dispatch --schedules 100000 --json    # spread + single
    python -m bench.beat_dispatch --schedules 1000 --minutes 1 # a quick smoke

It seeds N schedules (PeriodicTask + CrontabSchedule rows) in a database of its own, runs real
``celery beat`` processes (``bench.beat_runner``) against a Redis database of its own, logs the
publish time of every message and reports, per scheduler and case: what was due and sent,
duplicates, throughput, lag (publish time minus scheduled time), CPU and peak memory of the
beat process, and the plain ``send_task`` rate of one process over one producer measured in
the same run. See bench/README.md for the cases, the fields and the targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import database, tables
from bench.analysis import EARLY_TOLERANCE, Key, LogTail, Tally, latest_minute, minute_floor
from bench.database import Cron, Databases
from bench.procs import ROOT, Child, host_busy, host_cpu, stop_all

OURS = "scheduler.beat:DatabaseScheduler"
STOCK = "django_celery_beat.schedulers:DatabaseScheduler"
LABELS = {OURS: "ours", STOCK: "stock"}
CASES = ("burst", "two-beats", "spread", "single")
#: Up to this many schedules, ``--case auto`` runs burst + two-beats; above, spread + single.
AUTO_BURST_MAX = 20_000
#: Seconds allowed for our scheduler to drain a burst, or to become ready.
OURS_LIMIT = 300.0
#: Quiet seconds after the last due message before a burst run ends: one beat, two beats.
#: Two beats wait out a full republish period (REPUBLISH_AFTER + SWEEP_EVERY in
#: scheduler.beat.dispatch / scheduler.beat.scheduler), so a late duplicate from a sweep
#: would be seen.
SETTLE = {1: 2.0, 2: 16.0}
#: Seconds a raw round needs (start-up included), with a margin, before a burst's due time.
RAW_ROOM = 10.0
#: Seconds between looks at the publish logs.
POLL = 0.1
#: Name of the one due schedule in the single case.
SINGLE_NAME = "bench-every-minute"

TARGETS = {
    ("burst", "ours"): "all sent, none twice, throughput >= 90% of raw send_task",
    ("two-beats", "ours"): "zero duplicates, zero missed",
    ("spread", "ours"): "all sent once, lag p99 < 1 s, RSS < 200 MB, CPU < 10% of a core",
    ("single", "ours"): "lag p99 < 250 ms",
}


def _name(i: int) -> str:
    return f"bench-{i:06d}"


def _index(name: str) -> int | None:
    try:
        return int(name.removeprefix("bench-"))
    except ValueError:
        return None


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def code_version() -> str | None:
    """The checkout's commit, with ``+dirty`` when scheduler/ has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "scheduler"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return f"{commit}+dirty" if commit and dirty else commit or None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sleep_until(t: float, check: Callable[[], None] | None = None) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.5))
        if check is not None:
            check()


@dataclass
class Workload:
    """What is seeded for a run and how to read its publish log."""

    rows: list[tuple[str, Cron]]
    infer: Callable[[str, float], int | None]
    expected: Callable[[list[int]], set[Key]]  # occurrences due at the given boundaries


def burst_workload(n: int, due: int) -> Workload:
    moment = datetime.fromtimestamp(due, UTC)
    cron = Cron(minute=str(moment.minute), hour=str(moment.hour))
    names = [_name(i) for i in range(n)]
    return Workload(
        rows=[(name, cron) for name in names],
        infer=lambda name, t: due,
        expected=lambda boundaries: {(name, due) for name in names},
    )


def spread_workload(n: int) -> Workload:
    """``n`` hourly schedules, minute ``i % 60``: about n/60 due every minute."""

    def infer(name: str, t: float) -> int | None:
        i = _index(name)
        return None if i is None else latest_minute(t, i % 60)

    def expected(boundaries: list[int]) -> set[Key]:
        due: set[Key] = set()
        for b in boundaries:
            due.update((_name(i), b) for i in range(b // 60 % 60, n, 60))
        return due

    return Workload(
        rows=[(_name(i), Cron(minute=str(i % 60))) for i in range(n)],
        infer=infer,
        expected=expected,
    )


def single_workload(n: int, now: float) -> Workload:
    """``n`` schedules that fire once a day twelve hours from now, plus one every minute."""
    far = str((datetime.fromtimestamp(now, UTC).hour + 12) % 24)
    rows = [(_name(i), Cron(minute=str(i % 60), hour=far)) for i in range(n)]
    rows.append((SINGLE_NAME, Cron(minute="*")))

    def infer(name: str, t: float) -> int | None:
        return minute_floor(t + EARLY_TOLERANCE) if name == SINGLE_NAME else None

    return Workload(
        rows=rows,
        infer=infer,
        expected=lambda boundaries: {(SINGLE_NAME, b) for b in boundaries},
    )


class Bench:
    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.workdir = Path(tempfile.mkdtemp(prefix="bench_beat_"))
        self.dbs = Databases(opts.database_server, opts.database)
        self.env = database.django_env(self.dbs.url(), opts.redis)
        self.results: list[dict] = []
        self.raw_per_s: float | None = None
        self.raw_rounds: list[float] = []
        self.profiles: list[Path] = []
        self.version = code_version()
        self._runs = 0

    # --- set-up -------------------------------------------------------------------------
    def prepare(self) -> None:
        os.environ.update({k: v for k, v in self.env.items() if k not in os.environ})
        os.environ["DATABASE_URL"] = self.env["DATABASE_URL"]
        os.environ["CELERY_BROKER_URL"] = self.env["CELERY_BROKER_URL"]
        os.environ["DATABASE_POOL"] = "false"  # this process drops databases between runs
        import django

        django.setup()
        log(f"code {self.version}; migrating the template database {self.dbs.template}")
        self.dbs.create_template(self.env)

    def lead(self, n: int) -> float:
        """Seconds from now to the earliest due time: seeding and the slower scheduler's
        start-up must fit (both about linear in n; measured here at ~0.14 and ~0.21 ms/row,
        plus ~2 s)."""
        return self.opts.lead if self.opts.lead is not None else 6.0 + n * 0.0006

    def fresh(self, workload: Workload) -> None:
        self.dbs.fresh()
        database.flush_redis(self.opts.redis)
        started = time.time()
        database.seed(workload.rows, self.opts.queue)
        log(f"seeded {len(workload.rows)} schedules in {time.time() - started:.1f}s")

    def start_beat(self, scheduler: str, tag: str) -> tuple[Child, LogTail, Path]:
        self._runs += 1
        stem = self.workdir / f"{self._runs:02d}-{tag}"
        publish_log, ready = stem.with_suffix(".publish"), stem.with_suffix(".ready")
        env = dict(self.env)
        if self.opts.profile and scheduler == OURS:
            profile = stem.with_suffix(".pstats")
            env["BENCH_PROFILE"] = str(profile)
            self.profiles.append(profile)
        args = [
            "-m",
            "bench.beat_runner",
            "beat",
            "--scheduler",
            scheduler,
            "--log",
            str(publish_log),
            "--ready",
            str(ready),
            # Ours loads everything in setup; django-celery-beat's first tick reads the table.
            "--ready-at",
            "tick-end" if scheduler == STOCK else "tick-start",
            "--state",
            str(stem.with_suffix(".state")),
            "--loglevel",
            self.opts.loglevel,
        ]
        child = Child(tag, args, env, stem.with_suffix(".out"))
        return child, LogTail(publish_log), ready

    # --- the raw baseline -------------------------------------------------------------------
    def measure_raw(self, rounds: int, tag: str) -> list[float]:
        """Rates (messages/s) of ``rounds`` rounds of plain send_task, on a queue of their own
        that is deleted afterwards."""
        self._runs += 1
        stem = self.workdir / f"{self._runs:02d}-{tag}"
        queue = f"{self.opts.queue}_raw"
        child = Child(
            tag,
            [
                "-m",
                "bench.beat_runner",
                "raw",
                "--count",
                str(self.opts.raw_count),
                "--rounds",
                str(rounds),
                "--queue",
                queue,
                "--log",
                str(stem.with_suffix(".publish")),
            ],
            self.env,
            stem.with_suffix(".out"),
        )
        child.popen.wait()
        child.stop()
        if child.popen.returncode != 0:
            raise RuntimeError(f"the raw send_task baseline failed:\n{child.tail()}")
        database.delete_queue(self.opts.redis, queue)
        by_round: dict[str, list[float]] = {}
        for name, _, t in LogTail(stem.with_suffix(".publish")).read():
            if name.startswith("raw"):
                by_round.setdefault(name.split("-")[0], []).append(t)
        rates = [round(len(ts) / (ts[-1] - ts[0]), 1) for ts in by_round.values()]
        self.raw_rounds.extend(rates)
        self.raw_per_s = round(statistics.median(self.raw_rounds), 1)
        return rates

    def raw_baseline(self) -> None:
        rates = self.measure_raw(self.opts.raw_rounds, "raw")
        log(
            f"raw send_task: {len(rates)} rounds of {self.opts.raw_count} messages: "
            f"{', '.join(f'{r:.0f}' for r in rates)}/s"
        )

    def raw_result(self) -> dict:
        return {
            "case": "raw",
            "scheduler": "raw send_task",
            "schedules": None,
            "due": self.opts.raw_count,
            "sent": self.opts.raw_count,
            "duplicates": 0,
            "missed": 0,
            "throughput_per_s": self.raw_per_s,
            "raw_send_per_s": self.raw_per_s,
            "ratio_to_raw": 1.0,
            "lag_p50_ms": None,
            "lag_p99_ms": None,
            "lag_max_ms": None,
            "cpu_s": None,
            "cpu_percent": None,
            "wall_s": round(self.opts.raw_count / self.raw_per_s, 3) if self.raw_per_s else None,
            "rss_mb": None,
            "raw_rounds_per_s": self.raw_rounds,
        }

    # --- burst: everything due in one minute ---------------------------------------------------
    def burst(self, scheduler: str, processes: int = 1) -> dict:
        n = self.opts.schedules
        case = "burst" if processes == 1 else "two-beats"
        label = LABELS[scheduler]
        due = math.ceil((time.time() + self.lead(n)) / 60) * 60
        workload = burst_workload(n, due)
        log(f"{case} / {label}: {n} schedules due at {_utc(due)} UTC")
        self.fresh(workload)
        if time.time() + 3 > due:
            log("seeding took longer than planned; the beat may start late")
        beats = [self.start_beat(scheduler, f"{case}-{label}-{k}") for k in range(processes)]
        tally = Tally(workload.expected([due]), workload.infer)
        limit = self.opts.stock_limit if scheduler == STOCK else OURS_LIMIT

        def check() -> None:
            for child, _, _ in beats:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")

        # A raw round next to the burst, so throughput is compared with what send_task does
        # under the same conditions (the rate drifts by 10-20% over minutes on a shared VM):
        # while the beats wait for the due time when there is room, else just after.
        adjacent: list[float] = []
        while time.time() < due - 0.5 and not all(_read_ready(r) for _, _, r in beats):
            check()
            time.sleep(POLL)
        while len(adjacent) < self.opts.raw_rounds and time.time() + RAW_ROOM < due:
            adjacent += self.measure_raw(1, f"raw-{case}-{label}")
        sleep_until(due - 0.5, check)
        cpu_start = [child.cpu_seconds() or 0.0 for child, _, _ in beats]
        host_start, t_start = host_cpu(), time.time()
        ready = [_read_ready(r) for _, _, r in beats]
        done_at = quiet_since = None
        while time.time() < due + limit:
            check()
            for child, _, _ in beats:
                child.sample_memory()
            records = [rec for _, tail, _ in beats for rec in tail.read()]
            tally.add(records)
            now = time.time()
            if records or quiet_since is None:
                quiet_since = now
            if tally.complete:
                if done_at is None:
                    done_at = now
                    cpu_end = [child.cpu_seconds() or 0.0 for child, _, _ in beats]
                    host_end = host_cpu()
                if now - quiet_since >= SETTLE[processes]:
                    break
            time.sleep(POLL)
        if done_at is None:
            done_at = time.time()
            cpu_end = [child.cpu_seconds() or 0.0 for child, _, _ in beats]
            host_end = host_cpu()
            log(f"{case} / {label}: time limit ({limit:.0f}s after the due time) reached")
        memory = [child.memory_mb() for child, _, _ in beats]
        pss = [child.peak_pss_mb for child, _, _ in beats if child.peak_pss_mb is not None]
        for child, _, _ in beats:
            child.stop()
        tally.add(rec for _, tail, _ in beats for rec in tail.read())
        if not adjacent:
            adjacent = self.measure_raw(1, f"raw-{case}-{label}")
        adjacent_raw = round(statistics.median(adjacent), 1)
        summary = tally.summary()
        wall = done_at - t_start
        cpu = sum(cpu_end) - sum(cpu_start)
        within = sum(1 for (_, at), t in tally.first.items() if t < at + 60)
        ready_s = [
            r - child.started if r else None for r, (child, _, _) in zip(ready, beats, strict=True)
        ]
        result = self._result(case, scheduler, processes, summary, cpu, wall, memory)
        result["pss_mb"] = round(max(pss), 1) if pss else None
        if result["throughput_per_s"]:
            result["ratio_to_raw"] = round(result["throughput_per_s"] / adjacent_raw, 3)
        result.update(
            raw_send_per_s=adjacent_raw,
            raw_send_median_per_s=self.raw_per_s,
            host_cpu_percent=host_busy(host_start, host_end),
            sent_within_minute=within,
            drain_s=_round3(summary["last_publish"] - due) if summary["last_publish"] else None,
            ready_s=_max_or_none(ready_s),
            late_start=any(r is None or r > due for r in ready),
            time_limited=not tally.complete,
        )
        return self._finish(result)

    # --- spread / single: a few minutes of real time -------------------------------------------
    def windowed(self, case: str, scheduler: str) -> dict:
        n = self.opts.schedules
        label = LABELS[scheduler]
        workload = spread_workload(n) if case == "spread" else single_workload(n, time.time())
        minutes = self.opts.minutes if scheduler == OURS else self.opts.stock_minutes
        log(f"{case} / {label}: {n} schedules, measuring {minutes} minute(s)")
        self.fresh(workload)
        child, tail, ready_file = self.start_beat(scheduler, f"{case}-{label}")
        wait = OURS_LIMIT if scheduler == OURS else self.opts.stock_limit
        deadline = child.started + wait
        ready = None
        while ready is None and time.time() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
            ready = _read_ready(ready_file)
            time.sleep(POLL)
        if ready is None:
            log(f"{case} / {label}: not ready after {wait:.0f}s; measuring anyway")
        start = math.ceil(((ready or time.time()) + 2) / 60) * 60
        boundaries = [start + 60 * k for k in range(minutes)]
        end = start + 60 * minutes - 1
        tally = Tally(workload.expected(boundaries), workload.infer)
        log(
            f"{case} / {label}: ready after {_fmt(ready, child.started)}; window {_utc(start)}"
            f"-{_utc(end)} UTC, {len(tally.expected)} occurrences due"
        )
        sleep_until(start - 0.5, lambda: tally.add(tail.read()))
        cpu_start, host_start, t_start = child.cpu_seconds() or 0.0, host_cpu(), time.time()
        while time.time() < end:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
            tally.add(tail.read())
            child.sample_memory()
            time.sleep(min(0.5, max(0.0, end - time.time())))
        cpu_end, host_end, t_end = child.cpu_seconds() or 0.0, host_cpu(), time.time()
        memory = [child.memory_mb()]
        pss = child.peak_pss_mb
        child.stop()
        # What was published after the window closed does not count.
        tally.add(record for record in tail.read() if record[2] <= t_end)
        summary = tally.summary()
        result = self._result(
            case, scheduler, 1, summary, cpu_end - cpu_start, t_end - t_start, memory
        )
        result.update(
            pss_mb=round(pss, 1) if pss else None,
            host_cpu_percent=host_busy(host_start, host_end),
            window_minutes=minutes,
            ready_s=_round3(ready - child.started) if ready else None,
            late_start=ready is None or ready > start,
        )
        return self._finish(result)

    # --- results -------------------------------------------------------------------------------
    def _result(self, case, scheduler, processes, summary, cpu, wall, memory) -> dict:
        peaks = [p for p, _ in memory if p is not None]
        ends = [c for _, c in memory if c is not None]
        queued = database.queued(self.opts.redis, self.opts.queue)
        return {
            "code": self.version,
            "case": case,
            "scheduler": LABELS[scheduler],
            "scheduler_class": scheduler,
            "processes": processes,
            "schedules": self.opts.schedules,
            "due": summary["due"],
            "sent": summary["sent"],
            "duplicates": summary["duplicates"],
            "missed": summary["missed"],
            "throughput_per_s": summary["throughput_per_s"],
            "raw_send_per_s": self.raw_per_s,
            "ratio_to_raw": (
                round(summary["throughput_per_s"] / self.raw_per_s, 3)
                if summary["throughput_per_s"] and self.raw_per_s
                else None
            ),
            "lag_p50_ms": summary["lag_p50_ms"],
            "lag_p99_ms": summary["lag_p99_ms"],
            "lag_max_ms": summary["lag_max_ms"],
            "cpu_s": round(cpu, 2),
            "cpu_percent": round(cpu / wall * 100, 1) if wall > 0 else None,
            "wall_s": round(wall, 2),
            "rss_mb": round(max(peaks), 1) if peaks else None,
            "rss_end_mb": round(max(ends), 1) if ends else None,
            "publishes": summary["publishes"],
            "other_publishes": summary["other_publishes"],
            "redis_queued": queued,
        }

    def _finish(self, result: dict) -> dict:
        target = TARGETS.get((result["case"], result["scheduler"]))
        if target:
            result["target"] = target
            result["target_met"] = target_met(result)
        self.results.append(result)
        log(
            f"{result['case']} / {result['scheduler']}: sent {result['sent']}/{result['due']}, "
            f"{result['duplicates']} duplicate(s), {result['throughput_per_s']}/s, "
            f"lag p99 {result['lag_p99_ms']} ms, cpu {result['cpu_s']}s, "
            f"rss {result['rss_mb']} MB"
        )
        for profile in self.profiles:
            print_profile(profile)
        self.profiles.clear()
        return result

    def cleanup(self) -> None:
        stop_all()
        if self.opts.keep:
            log(f"kept: database {self.dbs.name}, Redis {self.opts.redis}, {self.workdir}")
            return
        try:
            self.dbs.drop_all()
            database.flush_redis(self.opts.redis)
        except Exception as exc:  # cleanup must not hide the run's own error
            log(f"cleanup failed: {exc!r}")
        if self.opts.profile:
            log(f"profiles kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def target_met(r: dict) -> bool:
    ok = r["duplicates"] == 0 and r["missed"] == 0
    if r["case"] == "burst":
        return ok and (r["ratio_to_raw"] or 0) >= 0.9
    if r["case"] == "spread":
        return (
            ok
            and (r["lag_p99_ms"] or math.inf) < 1000
            and (r.get("pss_mb") or r["rss_mb"] or math.inf) < 200
            and (r["cpu_percent"] or math.inf) < 10
        )
    if r["case"] == "single":
        return ok and (r["lag_p99_ms"] or math.inf) < 250
    return ok


def print_profile(path: Path, limit: int = 30) -> None:
    import pstats

    if not path.exists():
        log(f"no profile written at {path}")
        return
    print(f"\n--- profile {path.name} (cumulative) ---", file=sys.stderr)
    stats = pstats.Stats(str(path), stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(limit)
    print(f"--- profile {path.name} (own time) ---", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(limit)


def _read_ready(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _round3(value: float) -> float:
    return round(value, 3)


def _max_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(max(known), 3) if known and len(known) == len(values) else None


def _fmt(ready: float | None, started: float) -> str:
    return f"{ready - started:.1f}s" if ready else "(never)"


COLUMNS = (
    ("case", "case", "{}"),
    ("scheduler", "scheduler", "{}"),
    ("processes", "procs", "{}"),
    ("schedules", "schedules", "{}"),
    ("due", "due", "{}"),
    ("sent", "sent", "{}"),
    ("duplicates", "dup", "{}"),
    ("missed", "missed", "{}"),
    ("throughput_per_s", "msg/s", "{:.0f}"),
    ("ratio_to_raw", "vs raw", "{:.2f}"),
    ("sent_within_minute", "in 1st min", "{}"),
    ("lag_p50_ms", "lag p50 ms", "{:.0f}"),
    ("lag_p99_ms", "lag p99 ms", "{:.0f}"),
    ("lag_max_ms", "lag max ms", "{:.0f}"),
    ("cpu_s", "cpu s", "{:.2f}"),
    ("cpu_percent", "cpu %", "{:.1f}"),
    ("wall_s", "wall s", "{:.1f}"),
    ("rss_mb", "rss MB", "{:.0f}"),
    ("pss_mb", "pss MB", "{:.0f}"),
    ("host_cpu_percent", "host %", "{:.0f}"),
    ("ready_s", "start s", "{:.1f}"),
    ("target_met", "target", "{}"),
)


def table(results: list[dict]) -> str:
    lines = tables.render(results, COLUMNS, left={0, 1})
    notes = [
        f"  {r['case']} / {r['scheduler']}: target {r['target']}: "
        f"{'met' if r['target_met'] else 'MISSED'}"
        for r in results
        if "target" in r
    ]
    return "\n".join(lines + (["", *notes] if notes else []))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.beat_dispatch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--schedules", type=int, default=10_000, help="N (default 10000)")
    parser.add_argument(
        "--case",
        default="auto",
        help="comma-separated: burst, two-beats, spread, single, all, or auto (default: "
        f"burst,two-beats up to {AUTO_BURST_MAX} schedules, else spread,single)",
    )
    parser.add_argument("--minutes", type=int, default=3, help="window of spread/single")
    parser.add_argument(
        "--stock",
        choices=("auto", "all", "none"),
        default="auto",
        help="where django-celery-beat's scheduler runs too: auto = burst and spread",
    )
    parser.add_argument(
        "--stock-limit",
        type=float,
        default=120.0,
        help="seconds the stock scheduler gets: after the due time (burst), to start (spread)",
    )
    parser.add_argument("--stock-minutes", type=int, default=1, help="its spread/single window")
    parser.add_argument("--raw-count", type=int, default=5_000, help="messages per raw round")
    parser.add_argument("--raw-rounds", type=int, default=3, help="raw rounds (median)")
    parser.add_argument("--lead", type=float, help="seconds from seeding to a burst's due time")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout, table on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the database, Redis and logs")
    parser.add_argument("--profile", action="store_true", help="cProfile our beat (slower)")
    parser.add_argument("--loglevel", default="WARNING", help="beat's log level")
    database.add_server_arguments(parser, "bench_beat", redis_db=14)
    parser.add_argument("--queue", default="bench_beat")
    opts = parser.parse_args(argv)
    cases = [c.strip() for c in opts.case.split(",") if c.strip()]
    if cases == ["auto"]:
        cases = ["burst", "two-beats"] if opts.schedules <= AUTO_BURST_MAX else ["spread", "single"]
    elif "all" in cases:
        cases = list(CASES)
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    opts.cases = [c for c in CASES if c in cases]
    if opts.schedules < 1 or opts.minutes < 1 or opts.stock_minutes < 1:
        parser.error("--schedules, --minutes and --stock-minutes must be positive")
    return opts


def _stock_runs(opts: argparse.Namespace, case: str) -> bool:
    if case == "two-beats" or opts.stock == "none":
        return False
    return opts.stock == "all" or case in ("burst", "spread")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    bench = Bench(opts)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    failed = False
    try:
        bench.prepare()
        if not {"burst", "two-beats"} & set(opts.cases):
            bench.raw_baseline()  # else measured while the burst runs wait for their due time
        # Two beats first: its 16 s settle then overlaps the wait for the next minute.
        for case in sorted(opts.cases, key=lambda c: c != "two-beats"):
            schedulers = [OURS] + ([STOCK] if _stock_runs(opts, case) else [])
            for scheduler in schedulers:
                if case == "burst":
                    bench.burst(scheduler)
                elif case == "two-beats":
                    bench.burst(scheduler, processes=2)
                else:
                    bench.windowed(case, scheduler)
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    except Exception as exc:
        log(f"failed: {exc}")
        failed = True
    finally:
        bench.cleanup()
    ordered = sorted(bench.results, key=lambda r: CASES.index(r["case"]))
    results = ([bench.raw_result()] if bench.raw_rounds else []) + ordered
    out = sys.stderr if opts.json else sys.stdout
    print("\n" + table(results), file=out)
    if opts.json:
        for result in results:
            print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
