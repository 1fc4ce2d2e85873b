"""The overview (the admin's landing page): the hourly rollup it reads, the load-ahead forecast
with its pile-ups and the jitter that spreads them, beat heartbeats, queue depths, and the page
itself through HTTP: its panels, permissions, acknowledge, and bounded queries."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from scheduler.alerts.models import Incident
from scheduler.beat import heartbeats as beat_heartbeats
from scheduler.beat.models import BeatHeartbeat
from scheduler.clock import FileClock
from scheduler.runs import queue_depth, rollup
from scheduler.runs.models import JobRun, RollupMark, RunHour, WorkerHeartbeat
from scheduler.schedules import forecast
from scheduler.schedules.models import LoadForecast, Schedule

pytestmark = pytest.mark.django_db
Status = JobRun.Status
NOW = datetime(2026, 6, 1, 12, 30, 0, tzinfo=UTC)
JOB = "builtin.http_request"


@pytest.fixture
def at_now(settings, tmp_path):
    """The platform's clock (beat's, the overview's) stands at NOW."""
    path = tmp_path / "clock"
    FileClock.set(path, NOW)
    settings.SCHEDULER_CLOCK = f"file:{path}"
    return NOW


def ended(schedule, minutes_ago: float, status=Status.SUCCEEDED, duration=1.0, **fields):
    """A run of ``schedule`` that ended ``minutes_ago`` before NOW."""
    finished = NOW - timedelta(minutes=minutes_ago)
    defaults = {
        "schedule": schedule,
        "periodic_task": schedule.periodic_task,
        "task_name": schedule.job.name,
        "scheduled_for": finished - timedelta(seconds=(duration or 0) + 2),
        "published_at": finished - timedelta(seconds=(duration or 0) + 1),
        "status": status,
        "duration": duration,
        "finished_at": finished,
        "trigger": JobRun.Trigger.BEAT,
    }
    return JobRun.objects.create(**{**defaults, **fields})


def raw_counts(since: datetime) -> Counter:
    """The naive answer, grouped over the raw history."""
    return Counter(
        (rollup.hour_of(f), t, s)
        for f, t, s in JobRun.objects.filter(finished_at__gte=since).values_list(
            "finished_at", "task_name", "status"
        )
    )


# --- the rollup ------------------------------------------------------------------------


def test_the_rollup_counts_each_run_once_by_hour_job_and_outcome(make_schedule):
    schedule = make_schedule()
    for minutes in (5, 70, 71, 200):
        ended(schedule, minutes)
    ended(schedule, 75, Status.FAILED, duration=30.0)
    ended(schedule, 0.1)  # inside the margin (6 s ago): left for the next refresh

    assert rollup.refresh(NOW) == 5
    assert rollup.refresh(NOW) == 0  # nothing new: nothing counted twice
    stored = {(r.hour, r.task_name, r.status): r.runs for r in RunHour.objects.all()}
    expected = raw_counts(NOW - timedelta(days=1)) - Counter(
        {(rollup.hour_of(NOW), JOB, "succeeded"): 1}
    )
    assert Counter(stored) == expected
    assert RollupMark.objects.get().rolled_until == NOW - rollup.MARGIN

    # Read back: the rolled-up hours plus the run after the mark equal the raw history.
    data = rollup.read(NOW - timedelta(days=1))
    got = Counter({key: t.runs for key, t in data.cells.items()})
    assert got == raw_counts(NOW - timedelta(days=1))

    # A later refresh adds only what ended since, to the same hour's row.
    ended(schedule, -1)  # ends a minute after NOW
    assert rollup.refresh(NOW + timedelta(minutes=3)) == 2
    assert RunHour.objects.get(hour=rollup.hour_of(NOW), status="succeeded").runs == 3


def test_a_refresh_that_finds_the_mark_moved_adds_nothing(make_schedule):
    schedule = make_schedule()
    ended(schedule, 30)
    rollup.refresh(NOW - timedelta(hours=1))
    before = rollup.rolled_until()
    # Another process moves the mark between this one's read and its claim.
    RollupMark.objects.update(rolled_until=before + timedelta(seconds=1))
    assert not rollup._move_mark(before, NOW)
    assert rollup.refresh(NOW) == 1  # from the mark it finds now: the run, once
    assert RunHour.objects.get(status="succeeded").runs == 1


def test_durations_and_lag_are_rolled_up_and_percentiles_estimated(make_schedule):
    schedule = make_schedule()
    for i in range(100):
        ended(schedule, 10 + i * 0.1, duration=0.2 if i < 90 else 40.0)
    late = NOW - timedelta(minutes=10)
    ended(schedule, 9, scheduled_for=late, published_at=late + timedelta(seconds=25))
    # A manual run has no due time to be late for: no lag however long after "scheduled".
    ended(schedule, 8, trigger=JobRun.Trigger.MANUAL, published_at=NOW)
    rollup.refresh(NOW)
    data = rollup.read(NOW - timedelta(hours=2))
    tally = data.durations_by_task()[JOB]
    assert sum(tally.durations) == 102
    p50, p95 = rollup.percentile(tally, 0.5), rollup.percentile(tally, 0.95)
    assert 0.1 < p50 <= 0.25  # in the bucket of the 0.2 s runs
    assert 30 < p95 <= 60  # in the bucket of the 40 s runs
    lag = data.lag_by_hour()[rollup.hour_of(NOW - timedelta(minutes=10))]
    assert lag.lag_count == 101  # every beat run, not the manual one
    assert lag.lag_max == 25.0


def test_the_first_refresh_reads_back_a_week_and_old_hours_are_deleted(make_schedule):
    schedule = make_schedule()
    ended(schedule, 60 * 24 * 7 + 30)  # within the first look back (8 days)
    ended(schedule, 60 * 24 * 10)  # before it
    assert rollup.refresh(NOW) == 1
    RunHour.objects.create(
        hour=rollup.hour_of(NOW - timedelta(days=40)), task_name=JOB, status="ok"
    )
    rollup.refresh(NOW + timedelta(minutes=5))
    assert not RunHour.objects.filter(status="ok").exists()


# --- the forecast ----------------------------------------------------------------------


@pytest.fixture
def pileup(make_schedule, settings):
    settings.OVERVIEW_PILEUP_AT = 5
    made = [make_schedule(f"nightly {i}", "0 3 * * *") for i in range(6)]
    made += [make_schedule(f"berlin {i}", "0 5 * * *", timezone="Europe/Berlin") for i in range(2)]
    made += [make_schedule(f"spread {i}", "0 3 * * *", jitter=1200) for i in range(4)]
    make_schedule("paused", "0 3 * * *").__class__.objects.filter(name="paused").update(
        paused_at=NOW
    )
    make_schedule("hourly", "30 * * * *")
    return made


def test_the_forecast_bins_the_next_day_and_flags_same_second_pileups(pileup):
    result = forecast.refresh(NOW)
    at = datetime(2026, 6, 2, 3, 0, tzinfo=UTC)  # 05:00 in Berlin (summer) is 03:00 UTC too
    [peak] = forecast.peaks_of(result)
    assert peak.at == at and peak.count == 8  # 6 + 2 Berlin, not the jittered nor the paused
    assert sorted(peak.groups) == [("0 3 * * *", "UTC", 6), ("0 5 * * *", "Europe/Berlin", 2)]
    assert result.schedules == 13
    assert result.start == NOW  # 12:30, a quarter hour
    bin_index = int((at - NOW) / forecast.BIN)
    # The pile-up, and 3 of the 4 jittered ones (900 s of their 1200 s); the 4th in the next.
    assert result.bins[bin_index] == 8 + 3
    assert result.bins[bin_index + 1] == 1
    hourly = [int(timedelta(hours=h) / forecast.BIN) for h in range(1, 25)]  # 13:30 ... 12:30
    assert all(result.bins[i] == 1 for i in hourly if i not in (bin_index, bin_index + 1))
    assert sum(result.bins[: int(forecast.HORIZON / forecast.BIN) + 1]) == 8 + 4 + 24


def test_pileup_schedules_are_found_and_spread_with_jitter(pileup):
    at = datetime(2026, 6, 2, 3, 0, tzinfo=UTC)
    found = forecast.pileup_schedules(at, NOW)
    assert sorted(found.values_list("name", flat=True)) == sorted(
        [f"nightly {i}" for i in range(6)] + ["berlin 0", "berlin 1"]
    )
    assert forecast.suggested_jitter(8) == forecast.MIN_SUGGESTED
    assert forecast.suggested_jitter(2000) == 240
    assert forecast.suggested_jitter(10**6) == forecast.MAX_SUGGESTED
    assert forecast.set_jitter(found, 120) == 8
    assert set(
        Schedule.objects.filter(name__startswith="nightly").values_list("jitter", flat=True)
    ) == {120}
    assert forecast.peaks_of(forecast.refresh(NOW)) == []
    assert not forecast.pileup_schedules(at, NOW).exists()


# --- heartbeats and queues -------------------------------------------------------------


def test_a_beat_stamps_its_heartbeat_and_forgets_beats_gone_for_a_day(settings):
    BeatHeartbeat.objects.create(
        name="old:1",
        hostname="old",
        pid=1,
        started_at=NOW - timedelta(days=3),
        last_seen_at=NOW - timedelta(days=2),
    )
    beat_heartbeats.stamp(NOW - timedelta(minutes=5))
    beat_heartbeats.stamp(NOW, started_at=NOW - timedelta(hours=1))
    [beat] = BeatHeartbeat.objects.all()
    assert beat.last_seen_at == NOW
    assert beat.started_at == NOW - timedelta(minutes=5)  # the first stamp's
    assert beat_heartbeats.is_alive(
        beat, NOW + timedelta(seconds=settings.SCHEDULER_BEAT_LOST_AFTER)
    )
    assert not beat_heartbeats.is_alive(
        beat, NOW + timedelta(seconds=settings.SCHEDULER_BEAT_LOST_AFTER + 1)
    )


def test_queue_depth_counts_the_messages_waiting(queue_name, make_schedule):
    from celery import current_app

    make_schedule()  # names queue_name
    with current_app.connection_for_write() as conn:
        simple = conn.SimpleQueue(queue_name)
        for i in range(3):
            simple.put({"n": i})
        simple.close()
    depths = queue_depth.ask_broker(queue_depth.known_queues())
    assert depths.queues[queue_name] == 3
    assert not depths.error


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"])
def test_an_unreachable_broker_gives_unknown_depths_quickly(url):
    started = time.monotonic()
    depths = queue_depth.ask_broker(["celery"], timeout=0.5, url=url)
    assert depths.queues == {"celery": None}
    assert depths.error
    assert time.monotonic() - started < 10


# --- the page --------------------------------------------------------------------------


def member(django_user_model, name: str, *perms: str, group: str | None = None) -> Client:
    user = django_user_model.objects.create_user(username=name, password="x", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def panel(html: str, name: str) -> str:
    found = re.search(rf'<section class="[^"]*" id="ov-{name}">(.*?)</section>', html, re.S)
    return found.group(1) if found else ""


@pytest.fixture
def busy(make_schedule, django_user_model, at_now):
    """Failing, paused and running schedules, a live beat, a silent worker, some history."""
    failing = make_schedule("Billing export (nightly)", "0 2 * * *")
    paused = make_schedule("Search reindex", "0 4 * * *")
    runner = make_schedule("Long ETL", "0 1 * * *")
    Schedule.objects.filter(pk=paused.pk).update(
        paused_at=NOW - timedelta(hours=2),
        paused_by=django_user_model.objects.create_user("carol"),
        pause_note="vendor API down until Friday",
    )
    Incident.objects.create(
        key=f"schedule:{failing.pk}:failed",
        schedule=failing,
        kind="failed",
        title="Billing export failed",
        opened_at=NOW - timedelta(minutes=20),
        count=3,
    )
    JobRun.objects.create(
        schedule=runner,
        periodic_task=runner.periodic_task,
        task_name=JOB,
        scheduled_for=NOW - timedelta(minutes=50),
        status=Status.RUNNING,
        started_at=NOW - timedelta(minutes=50),
        worker_host="celery@w1",
    )
    beat_heartbeats.stamp(NOW - timedelta(seconds=5))
    WorkerHeartbeat.objects.create(
        hostname="celery@w1",
        pid=7,
        started_at=NOW - timedelta(hours=3),
        last_seen_at=NOW - timedelta(minutes=10),
    )
    for minutes in range(5, 300, 10):
        ended(failing, minutes, Status.FAILED if minutes % 30 == 5 else Status.SUCCEEDED)
    rollup.refresh(NOW)
    forecast.refresh(NOW)
    return {"failing": failing, "paused": paused, "runner": runner}


def test_the_overview_shows_what_is_failing_paused_running_and_alive(admin_client, busy):
    html = admin_client.get("/admin/").content.decode()
    incidents = panel(html, "incidents")
    assert "Billing export (nightly)" in incidents and "Acknowledge" in incidents
    paused = panel(html, "paused")
    assert "Search reindex" in paused and "carol" in paused and "vendor API down" in paused
    running = panel(html, "running")
    assert JOB in running and re.search(r"50 min \d+ s", running) and "celery@w1" in running
    assert 'class="ok" id="ov-beat-state"' in html and "Beat running" in html
    assert 'class="bad" id="ov-worker-state"' in html and "Workers stopped" in html
    assert "(stopped?)" in panel(html, "processes")
    # Every date shown carries its zone.
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", incidents)
    # The stock app list is still there, below.
    assert 'id="ov-apps"' in html and "Schedules" in html


def test_the_charts_draw_the_rolled_up_history(admin_client, busy):
    html = admin_client.get("/admin/").content.decode()
    history = panel(html, "history")
    assert history.count("<svg") == 4
    failed = JobRun.objects.filter(status=Status.FAILED).count()
    succeeded = JobRun.objects.filter(status=Status.SUCCEEDED).count()
    assert f"Succeeded {succeeded}" in history and f"Failed {failed}" in history
    tips = re.findall(r"<title>([^<]*): (\d+) failed</title>", history)
    assert sum(int(n) for _, n in tips) == failed
    assert f"{failed} of {failed + succeeded} runs failed" in history
    assert "p50 ≈" in history and "worst" in history
    week = admin_client.get("/admin/?window=7d").content.decode()
    assert "<strong>last 7 days</strong>" in week


def test_the_load_ahead_flags_a_pileup_and_one_click_spreads_it(admin_client, pileup, at_now):
    forecast.refresh(NOW)
    html = admin_client.get("/admin/").content.decode()
    load = panel(html, "load")
    assert "2026-06-02 03:00:00 UTC" in load and "Spread with 60 s of jitter" in load
    link = re.search(r'href="([^"]*overview/pileup/[^"]*)"', load).group(1).replace("&amp;", "&")
    confirm = admin_client.get(link).content.decode()
    assert "<strong>8</strong> enabled schedules" in confirm
    assert Schedule.objects.filter(jitter=60).count() == 0  # a GET changes nothing
    response = admin_client.post(
        reverse("admin:overview_pileup"), {"at": "2026-06-02T03:00:00+00:00", "jitter": "90"}
    )
    assert response.status_code == 302
    assert Schedule.objects.filter(jitter=90).count() == 8
    after = admin_client.get("/admin/").content.decode()
    assert "No pile-up" in panel(after, "load")


def test_bad_pileup_requests_change_nothing(admin_client, pileup, at_now, django_user_model):
    url = reverse("admin:overview_pileup")
    for data in (
        {"at": "tomorrow", "jitter": "60"},
        {"at": "2026-06-02T03:00:00+00:00", "jitter": "0"},
        {"at": "2026-06-02T03:00:00+00:00", "jitter": "999999"},
    ):
        response = admin_client.post(url, data, follow=True)
        assert response.status_code == 200
        assert [m.level_tag for m in response.context["messages"]] == ["error"]
    viewer = member(django_user_model, "viewer", group="Schedule viewers")
    assert viewer.post(url, {"at": "2026-06-02T03:00:00+00:00", "jitter": "60"}).status_code == 403
    assert not Schedule.objects.exclude(jitter__in=(0, 1200)).exists()


def test_acknowledge_from_the_overview_needs_the_permission_and_a_post(
    admin_client, busy, django_user_model
):
    incident = Incident.objects.get()
    url = reverse("admin:overview_acknowledge", args=[incident.pk])
    viewer = member(django_user_model, "viewer", "scheduler.view_incident")
    html = viewer.get("/admin/").content.decode()
    assert "Billing export" in panel(html, "incidents")
    assert "Acknowledge</button>" not in html
    assert viewer.post(url).status_code == 403
    assert admin_client.get(url).status_code == 405
    incident.refresh_from_db()
    assert incident.acknowledged_at is None
    assert admin_client.post(url).status_code == 302
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None and incident.acknowledged_by.is_superuser
    html = admin_client.get("/admin/").content.decode()
    assert "acknowledged by admin" in panel(html, "incidents")


def test_each_panel_needs_the_view_permission_of_what_it_shows(busy, django_user_model):
    nobody = member(django_user_model, "nobody")
    html = nobody.get("/admin/").content.decode()
    assert not any(
        panel(html, name) for name in ("incidents", "paused", "running", "history", "load")
    )
    schedules_only = member(django_user_model, "schedules", "scheduler.view_schedule")
    html = schedules_only.get("/admin/").content.decode()
    assert panel(html, "paused") and panel(html, "load")
    assert not panel(html, "running") and not panel(html, "incidents")
    assert "Spread with" not in html  # needs change_schedule
    runs_only = member(django_user_model, "runs", "scheduler.view_jobrun")
    html = runs_only.get("/admin/").content.decode()
    assert panel(html, "running") and panel(html, "history") and panel(html, "processes")
    assert not panel(html, "paused") and not panel(html, "incidents")


def test_the_page_makes_the_same_bounded_queries_whatever_the_history(admin_client, busy):
    def queries() -> list[str]:
        cache.clear()  # the queue depths are cached: ask for them each time
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get("/admin/").status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    few = queries()
    failing = busy["failing"]
    JobRun.objects.bulk_create(
        JobRun(
            schedule=failing,
            periodic_task=failing.periodic_task,
            task_name=JOB,
            scheduled_for=NOW - timedelta(hours=5, seconds=i),
            status=Status.SUCCEEDED,
            finished_at=NOW - timedelta(hours=5, seconds=i),
            duration=0.5,
        )
        for i in range(500)
    )
    rollup.refresh(NOW)
    many = queries()
    assert len(many) == len(few)
    history = [q for q in many if "scheduler_jobrun" in q]
    # The history is read only through bounded or partial-index lookups: the running runs,
    # and the runs that ended after the rollup's mark.
    assert all("LIMIT" in q or '"finished_at" >=' in q or "running" in q for q in history), history


def test_the_overview_before_any_rollup_or_forecast(admin_client, make_schedule, at_now):
    schedule = make_schedule()
    ended(schedule, 3)
    html = admin_client.get("/admin/").content.decode()
    assert "Succeeded 1" in panel(html, "history")  # read from the history itself
    assert "beat has not rolled it up yet" in html
    assert "Not computed yet" in panel(html, "load")
    assert "No beat seen" in html
    response = admin_client.post(reverse("admin:overview_forecast"), follow=True)
    assert "recomputed" in response.content.decode()
    assert LoadForecast.objects.exists()


def test_beat_offers_the_rollup_in_a_thread_at_most_every_interval(settings, make_schedule):
    """A refresh never runs in beat's loop itself: offer() returns at once and a second offer
    within the interval starts nothing."""
    import threading

    from scheduler.background import Periodic

    settings.OVERVIEW_ROLLUP_INTERVAL = 60
    release = threading.Event()
    passes: list[datetime] = []

    def slow(now: datetime) -> None:
        passes.append(now)
        release.wait(10)

    periodic = Periodic("test-rollup", lambda: settings.OVERVIEW_ROLLUP_INTERVAL, slow)

    class Clock:
        def now(self) -> datetime:
            return NOW

    started = time.monotonic()
    assert periodic.offer(clock=Clock())
    assert time.monotonic() - started < 1  # beat's loop did not wait for the pass
    assert not periodic.offer(clock=Clock())  # one at a time, and not before the interval
    release.set()
    periodic.join(10)
    assert passes == [NOW]
    assert not periodic.offer(clock=Clock())  # the interval has not passed
    settings.OVERVIEW_ROLLUP_INTERVAL = 0
    assert not periodic.offer(clock=Clock())  # off
    assert rollup.in_background.work is rollup.refresh
