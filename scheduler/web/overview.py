"""The overview: the admin's landing page, for on-call people and admins.

At a glance: schedules failing now (open incidents), paused schedules, runs running now
(with their progress, kept current by ``scheduler/run_progress.js``),
beat and worker heartbeats, queue depths; then charts of the last day or week (runs per hour
by outcome, failure rate and durations per job, dispatch lag) and the load ahead.

Every panel is a bounded query: on a partial index (open incidents, paused schedules, running
runs), on the small heartbeat tables, on the hourly rollup (``scheduler.runs.rollup``) or on
the forecast's one row (``scheduler.schedules.forecast``). Nothing here groups the run
history itself. A panel needs the view permission of what it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from scheduler.alerts.models import Incident
from scheduler.beat import heartbeats as beat_heartbeats
from scheduler.beat.models import BeatHeartbeat
from scheduler.formatting import format_duration
from scheduler.runs import queue_depth, rollup
from scheduler.runs.models import JobRun, WorkerHeartbeat, status_label
from scheduler.schedules import forecast
from scheduler.schedules.models import Schedule
from scheduler.web import charts, run_progress

#: Rows listed per panel (the panel says how many there are in all).
LISTED = 10
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
#: Jobs shown in the per-job charts, the busiest first.
MAX_JOBS = 12
#: Outcomes a failure rate counts over (the job ran and ended one way or the other).
FAILED = tuple(str(s) for s in JobRun.FAILURES)
RAN = ("succeeded", *FAILED)


@dataclass
class Heartbeat:
    name: str
    started_at: datetime
    last_seen_at: datetime
    alive: bool


@dataclass
class Overview:
    now: datetime
    window: str
    can: dict[str, bool]
    incidents: list[Incident] = field(default_factory=list)
    incidents_open: int = 0
    paused: list[Schedule] = field(default_factory=list)
    paused_count: int = 0
    running: list[JobRun] = field(default_factory=list)
    running_count: int = 0
    beats: list[Heartbeat] = field(default_factory=list)
    workers: list[Heartbeat] = field(default_factory=list)
    depths: queue_depth.Depths | None = None
    charts: dict[str, SafeString] = field(default_factory=dict)
    #: (outcome, its label, runs) in the window, for the legend.
    totals: list[tuple[str, str, int]] = field(default_factory=list)
    rolled_until: datetime | None = None
    forecast: Any = None
    peaks: list[forecast.Peak] = field(default_factory=list)
    pileup_at: int = 0

    @property
    def beat_ok(self) -> bool:
        return any(b.alive for b in self.beats)

    @property
    def workers_ok(self) -> bool:
        return any(w.alive for w in self.workers)


def permissions(user: Any) -> dict[str, bool]:
    return {
        "runs": user.has_perm("scheduler.view_jobrun"),
        "schedules": user.has_perm("scheduler.view_schedule"),
        "incidents": user.has_perm("scheduler.view_incident"),
        "acknowledge": user.has_perm("scheduler.acknowledge_incident"),
        "jitter": user.has_perm("scheduler.change_schedule"),
    }


def build(request: HttpRequest, now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    window = request.GET.get("window", "24h")
    if window not in WINDOWS:
        window = "24h"
    view = Overview(
        now=now,
        window=window,
        can=permissions(request.user),
        pileup_at=settings.OVERVIEW_PILEUP_AT,
    )
    if view.can["incidents"]:
        _incidents(view)
    if view.can["schedules"]:
        _paused(view)
        _load_ahead(view)
    if view.can["runs"]:
        _running(view)
        _processes(view)
        view.depths = queue_depth.depths()
        _history_charts(view, now - WINDOWS[window])
    return view


def _incidents(view: Overview) -> None:
    open_ = Incident.objects.filter(resolved_at__isnull=True)
    view.incidents_open = open_.count()
    view.incidents = list(
        open_.select_related("schedule", "acknowledged_by").order_by("-opened_at", "-id")[:LISTED]
    )


def _paused(view: Overview) -> None:
    paused = Schedule.objects.filter(paused_at__isnull=False)
    view.paused_count = paused.count()
    view.paused = list(
        paused.select_related("paused_by")
        .only("id", "name", "paused_at", "pause_note", "paused_by__username")
        .order_by("-paused_at")[:LISTED]
    )


def _running(view: Overview) -> None:
    running = JobRun.objects.filter(status=JobRun.Status.RUNNING)
    view.running_count = running.count()
    view.running = list(
        running.only(
            "id",
            "task_name",
            "schedule_id",
            "started_at",
            "worker_host",
            "attempt",
            "scheduled_for",
            "status",
            "progress",
        ).order_by("started_at")[:LISTED]
    )
    for run in view.running:
        run.running_for = format_duration((view.now - run.started_at).total_seconds())
        url = reverse("admin:scheduler_jobrun_progress", args=[run.pk])
        run.progress_bar = run_progress.bar(run, url)


def _processes(view: Overview) -> None:
    worker_limit = timedelta(seconds=settings.SCHEDULER_WORKER_LOST_AFTER)
    view.workers = [
        Heartbeat(
            w.hostname, w.started_at, w.last_seen_at, view.now - w.last_seen_at <= worker_limit
        )
        for w in WorkerHeartbeat.objects.order_by("hostname")[:50]
    ]
    view.beats = [
        Heartbeat(b.name, b.started_at, b.last_seen_at, beat_heartbeats.is_alive(b, view.now))
        for b in BeatHeartbeat.objects.order_by("-last_seen_at")[:20]
    ]


def _hour_label(hour: datetime, window: str) -> str:
    local = timezone.localtime(hour)
    if window == "24h":
        return f"{local:%H}" if local.hour % 3 == 0 else ""
    return f"{local:%a}" if local.hour == 0 else ""


def _history_charts(view: Overview, since: datetime) -> None:
    data = rollup.read(since)
    view.rolled_until = data.rolled_until
    by_hour = data.by_hour()
    columns = []
    for hour in rollup.hours(since, view.now):
        counts = by_hour.get(hour, {})
        local = timezone.localtime(hour)
        columns.append(
            charts.Column(
                _hour_label(hour, view.window),
                f"{local:%Y-%m-%d %H:00 %Z}",
                {k: float(v) for k, v in counts.items()},
            )
        )
    keys = [k for k in charts.OUTCOME_CLASSES if any(c.values.get(k) for c in columns)]
    names = {k: status_label(k).lower() for k in charts.OUTCOME_CLASSES}
    view.charts["runs"] = charts.stacked_bars(
        columns, keys, "Runs per hour by outcome", key_names=names
    )
    view.totals = [
        (key, names[key].capitalize(), int(sum(c.values.get(key, 0) for c in columns)))
        for key in keys
    ]

    by_task = data.by_task()
    busiest = sorted(by_task, key=lambda t: -sum(by_task[t][s] for s in RAN))[:MAX_JOBS]
    rate_rows = []
    for task in sorted(busiest, key=lambda t: -_failure_rate(by_task[t])):
        ran = sum(by_task[task][s] for s in RAN)
        if not ran:
            continue
        failed = sum(by_task[task][s] for s in FAILED)
        rate_rows.append(
            charts.Row(
                task,
                {"rate": 100.0 * failed / ran},
                f"{task}: {failed:,} of {ran:,} runs failed ({100.0 * failed / ran:.1f}%)",
            )
        )
    view.charts["failure_rate"] = rate_rows and charts.hbars(
        rate_rows,
        ["rate"],
        "Failure rate per job",
        top=100.0,
        fmt=lambda v: f"{v:.1f}%",
        classes={"rate": "failed"},
    )

    durations = data.durations_by_task()
    duration_rows = []
    for task in busiest:
        if task not in durations:
            continue
        p50 = rollup.percentile(durations[task], 0.5)
        p95 = rollup.percentile(durations[task], 0.95)
        duration_rows.append(
            charts.Row(
                task,
                {"p95": p95, "p50": p50},
                f"{task}: p50 ≈ {format_duration(p50)}, p95 ≈ {format_duration(p95)} "
                f"({sum(durations[task].durations):,} successful runs)",
            )
        )
    view.charts["durations"] = duration_rows and charts.hbars(
        duration_rows,
        ["p95", "p50"],
        "Duration per job: p50 and p95",
        fmt=lambda v: format_duration(v),
        classes={"p95": "p95", "p50": "p50"},
        caption=lambda row: " · ".join(
            f"{key} {format_duration(row.values[key])}" for key in ("p50", "p95")
        ),
    )

    lag = data.lag_by_hour()
    points = []
    for hour in rollup.hours(since, view.now):
        t = lag.get(hour)
        local = timezone.localtime(hour)
        points.append(
            (
                f"{local:%a %H:00}",
                {
                    "average": t.lag_sum / t.lag_count if t else None,
                    "worst": t.lag_max if t else None,
                },
            )
        )
    view.charts["lag"] = bool(lag) and charts.lines(
        points,
        ["worst", "average"],
        "Dispatch lag per hour (published minus scheduled)",
        fmt=lambda v: format_duration(v),
        classes={"worst": "worst", "average": "average"},
        every=max(len(points) // 6, 1),
    )


def _failure_rate(counts: Any) -> float:
    ran = sum(counts[s] for s in RAN)
    return sum(counts[s] for s in FAILED) / ran if ran else 0.0


def _load_ahead(view: Overview) -> None:
    latest = forecast.latest()
    view.forecast = latest
    if latest is None:
        return
    step = timedelta(seconds=latest.bin_seconds)
    first = max(int((view.now - latest.start) / step), 0)
    shown = int(forecast.HORIZON / step)
    peaks = [
        p for p in forecast.peaks_of(latest) if view.now <= p.at <= view.now + forecast.HORIZON
    ]
    peak_bins = {int((p.at - latest.start) / step) for p in peaks}
    columns = []
    for index in range(first, min(first + shown, len(latest.bins))):
        start = timezone.localtime(latest.start + index * step)
        label = (
            f"{start:%H}" if start.minute < latest.bin_seconds / 60 and start.hour % 3 == 0 else ""
        )
        key = "pileup" if index in peak_bins else "due"
        columns.append(
            charts.Column(label, f"{start:%a %H:%M %Z}", {key: float(latest.bins[index])})
        )
    view.charts["load"] = charts.stacked_bars(
        columns,
        ["due", "pileup"],
        "Schedules due per 15 minutes, next 24 hours",
        classes={"due": "due", "pileup": "failed"},
        key_names={"due": "schedules due", "pileup": "schedules due (pile-up)"},
        width=1240,
    )
    view.peaks = peaks
