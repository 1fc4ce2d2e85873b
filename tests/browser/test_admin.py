"""The admin in a browser, against the platform as ``make run`` starts it (gunicorn, a celery
worker and celery beat on the test database): sign in, add a schedule through the generated
form with its live cron preview, run it now and watch the run succeed, pause it with a note
and resume it, acknowledge the incident a failing job opens, and load every page of the admin
with no console error, failed request or missing file.

Each step leaves a screenshot; the folder is printed and named in the terminal summary.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs_catalog.models import JobDefinition
from scheduler.alerts.models import AlertChannel, Incident
from scheduler.runs.models import JobRun
from scheduler.schedules import services
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.browser import admin_ui as ui
from tests.browser.admin_ui import expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.timeout(120),
]

USERNAME, PASSWORD = "admin", "browser-Test-pass-7731"
#: Weekdays at 06:15 UTC, five real fire times to preview. (Runs are watched by number, so
#: one that beat might send meanwhile changes nothing.)
CRON = "15 6 * * 1-5"
CRON_WORDS = "At 06:15, Monday through Friday"
FIRE_TIME = re.compile(r"^(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 06:15:00 UTC \(UTC\+00:00\)$")
#: Seconds a run may take from "Run now" to its end (a worker on a busy, small machine).
RUN_TIMEOUT = 30


@pytest.fixture
def admin_user(transactional_db):
    return get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)


def add_schedule(page, shots, name: str, job: str, params: dict[str, str], **delivery) -> int:
    """Through the job picker and the generated form; returns the new schedule's id."""
    ui.open_job_picker(page)
    shots.take(page, f"{name} job picker")
    ui.pick_job(page, job)
    page.get_by_label("Name").fill(name)
    ui.fill_params(page, params)
    preview = page.locator(".scheduler-cron-preview")
    expect(preview.locator("li")).to_have_count(0)  # nothing typed, nothing previewed
    ui.type_cron(page, "61 6 * * 1-5")
    expect(preview.locator(".scheduler-cron-error")).to_contain_text("61")
    ui.type_cron(page, CRON)
    expect(preview.locator(".scheduler-cron-error")).to_have_count(0)
    expect(preview.locator(".scheduler-cron-description")).to_have_text(CRON_WORDS)
    expect(preview.locator(".scheduler-cron-next-title")).to_have_text("Next runs in UTC:")
    times = preview.locator("ol.scheduler-next li")
    expect(times).to_have_count(5)
    assert all(FIRE_TIME.match(text) for text in times.all_inner_texts()), times.all_inner_texts()
    ui.open_collapsed(page, "Delivery and retries")
    for field, value in delivery.items():
        page.locator(f"#id_{field}").fill(value)
    shots.take(page, f"{name} form with the cron preview")
    ui.save(page)
    shots.take(page, f"{name} saved")
    return Schedule.objects.get(name=name).pk


def test_add_run_pause_and_resume_a_schedule(page, stack, admin_user, screenshots, problems):
    page.goto("/admin/login/")
    screenshots.take(page, "login")
    ui.log_in(page, USERNAME, PASSWORD)
    screenshots.take(page, "admin index")

    marker = stack.platform.tmp_path / "ran.txt"
    schedule_id = add_schedule(
        page,
        screenshots,
        "marker from the browser",
        "tests.touch_file",
        {"path": str(marker), "text": "browser"},
        queue=stack.platform.queue,
    )
    schedule = Schedule.objects.get(pk=schedule_id)
    assert (schedule.cron, schedule.queue) == (CRON, stack.platform.queue)
    assert schedule.params == {"path": str(marker), "text": "browser"}

    # Run now: the run shows in the history and reaches "succeeded"; the job really ran.
    run_id = ui.run_now(page, schedule_id)
    screenshots.take(page, "run now queued")
    row = ui.watch_run(page, schedule_id, run_id, "succeeded", RUN_TIMEOUT)
    expect(row).to_contain_text("marker from the browser")
    screenshots.take(page, "run succeeded in the history")
    assert JobRun.objects.get(pk=run_id).status == JobRun.Status.SUCCEEDED
    assert marker.read_text().startswith("browser ")

    # Pause with a note: the page says so, with the note; resumed, both are gone.
    note = "Upstream maintenance until Friday"
    ui.pause(page, schedule_id, note)
    status = ui.status_field(page)
    expect(status).to_contain_text(f"Paused by {USERNAME} at")
    expect(status.locator("q")).to_have_text(note)
    expect(page.locator("a.scheduler-action-resume")).to_be_visible()
    screenshots.take(page, "paused with a note")
    state = ui.schedule_state(page, "marker from the browser")
    expect(state).to_have_text("paused")
    expect(state.locator(".scheduler-badge")).to_have_attribute("title", note)
    screenshots.take(page, "paused in the list")

    ui.resume(page, schedule_id)
    expect(status).to_contain_text("Active; next run")
    expect(status).not_to_contain_text("Paused")
    expect(status).not_to_contain_text(note)
    expect(page.locator("a.scheduler-action-pause")).to_be_visible()
    screenshots.take(page, "resumed")
    state = ui.schedule_state(page, "marker from the browser")
    expect(state).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d 06:15:00 UTC$"))
    expect(state.locator(".scheduler-badge")).to_have_count(0)
    assert not Schedule.objects.get(pk=schedule_id).is_paused

    assert problems.take() == []


def test_a_failing_job_opens_an_incident_that_is_acknowledged(
    page, stack, admin_user, screenshots, problems
):
    ui.log_in(page, USERNAME, PASSWORD)
    schedule_id = add_schedule(
        page,
        screenshots,
        "nightly import",
        "tests.fails_until_file",
        {"ok_file": str(stack.platform.tmp_path / "never-there")},
        queue=stack.platform.queue,
        retry_max_attempts="1",
    )
    run_id = ui.run_now(page, schedule_id)
    ui.watch_run(page, schedule_id, run_id, "failed", RUN_TIMEOUT)
    screenshots.take(page, "run failed in the history")

    # The overview shows it failing, with the worker and beat alive.
    row = ui.incident_row(page, "nightly import")
    ui.reload_until(page, lambda: row.count() == 1, RUN_TIMEOUT, "the incident to open")
    expect(row.get_by_role("button", name="Acknowledge")).to_be_visible()
    expect(page.locator("#ov-incident-count .ov-big")).to_have_text("1")
    expect(page.locator("#ov-worker-state")).to_contain_text("Workers up")
    ui.reload_until(
        page,
        lambda: "Beat running" in page.locator("#ov-beat-state").inner_text(),
        RUN_TIMEOUT,
        "beat's heartbeat",
    )
    screenshots.take(page, "failing on the overview")
    incident = Incident.objects.get(schedule_id=schedule_id)

    ui.acknowledge(page, "nightly import")
    screenshots.take(page, "acknowledged on the overview")
    # The load ahead, computed on demand: the new schedule's next fire is in the chart.
    page.locator("#ov-load").get_by_role("button", name="Recompute now").click()
    expect(page.locator("#ov-load svg.chart rect").first).to_be_attached()
    expect(page.locator("#ov-load")).to_contain_text("enabled schedules, forecast at")
    screenshots.take(page, "load ahead recomputed")
    page.goto(f"{ui.INCIDENTS}{incident.pk}/change/")
    expect(page.locator(".field-state_badge .readonly")).to_have_text("acknowledged")
    expect(page.locator(".field-acknowledged .readonly")).to_contain_text(f"by {USERNAME}")
    screenshots.take(page, "acknowledged incident page")
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None and incident.resolved_at is None

    assert problems.take() == []


def walk_objects(user) -> dict[str, str]:
    """One object of each kind the admin shows, stored as the platform stores them; returns
    their change pages by kind."""
    definition = JobDefinition.objects.get(name="tests.touch_file")
    schedule = save_schedule(
        Schedule(name="walk", job=definition, cron=CRON, params={"path": "/tmp/walk.txt"})
    )
    paused = save_schedule(
        Schedule(name="walk paused", job=definition, cron=CRON, params={"path": "/tmp/p.txt"})
    )
    services.pause(paused, user, "Waiting for the new disk")
    now = timezone.now()
    run = JobRun.objects.create(
        schedule=schedule,
        periodic_task=schedule.periodic_task,
        task_name=definition.name,
        scheduled_for=now,
        trigger=JobRun.Trigger.MANUAL,
        status=JobRun.Status.FAILED,
        started_at=now,
        finished_at=now,
        duration=0.2,
        error_type="ConnectionError",
        error_message="upstream refused",
        traceback="Traceback (most recent call last):\n  ...\nConnectionError: upstream refused",
        logs="touching /tmp/walk.txt",
    )
    incident = Incident.objects.create(
        key=f"schedule:{schedule.pk}:failed",
        schedule=schedule,
        kind=Incident.Kind.FAILED,
        title=f"Failed: {schedule.name}",
        last_error="ConnectionError: upstream refused",
        first_run_id=run.pk,
        last_run_id=run.pk,
    )
    channel = AlertChannel.objects.create(
        name="on-call mail", kind=AlertChannel.Kind.EMAIL, recipients="oncall@example.com"
    )
    base = "/admin/scheduler/"
    return {
        "schedule": f"{base}schedule/{schedule.pk}/change/",
        "paused schedule": f"{base}schedule/{paused.pk}/change/",
        "run": f"{base}jobrun/{run.pk}/change/",
        "incident": f"{base}incident/{incident.pk}/change/",
        "alert channel": f"{base}alertchannel/{channel.pk}/change/",
        **{f"schedule {name}": f"{base}schedule/{schedule.pk}/{name}/" for name in ACTIONS},
        "schedule resume": f"{base}schedule/{paused.pk}/resume/",
        "generated form": f"{base}schedule/add/?job={definition.pk}",
        "runs of a schedule": f"{base}jobrun/?schedule={schedule.pk}",
        "open incidents": f"{base}incident/?state=open",
        "password change": "/admin/password_change/",
    }


ACTIONS = ("run", "pause", "duplicate", "backfill")


def test_every_admin_page_loads_without_errors(page, web, admin_user, screenshots, problems):
    """The index, every app page, list and add page, a change page of every kind of object
    there is, and a schedule's own pages: each answers 200 with nothing failing in the
    browser (console errors, uncaught exceptions, same-origin requests failing or >= 400,
    the icon included)."""
    named = walk_objects(admin_user)
    ui.log_in(page, USERNAME, PASSWORD)
    links = ui.index_links(page)
    assert "/admin/scheduler/schedule/" in links["lists"], links
    assert "/admin/scheduler/schedule/add/" in links["adds"], links  # the job picker

    found: dict[str, str] = {}
    failures: list[str] = []
    visited: set[str] = set()

    def visit(url: str, what: str) -> None:
        if url in visited:
            return
        visited.add(url)
        response = page.goto(url)  # returns once the page and its files have loaded
        screenshots.take(page, what, full_page=False)
        status = response.status if response else None
        if status != 200:
            failures.append(f"{url}: HTTP {status}")
        failures.extend(problems.take())

    visit("/admin/", "index")
    for url in links["apps"]:
        visit(url, f"app {url}")
    for url in links["lists"]:
        visit(url, f"list {url}")
        link = ui.first_object_link(page)
        if link:
            found[url] = link
    for url in links["adds"]:
        visit(url, f"add {url}")
    for what, url in named.items():
        visit(url, what)
    for list_url, link in found.items():
        visit(link, f"first of {list_url}")

    # The kinds created above were each listed, and their rows link to their pages.
    for kind in ("schedule", "jobrun", "incident", "alertchannel"):
        assert f"/admin/scheduler/{kind}/" in found, (kind, sorted(found))
    icon = page.request.get("/favicon.ico")
    assert icon.ok and icon.headers["content-type"].startswith("image/"), icon.headers
    assert failures == []

    # The watch catches what it is there for (else the walk above would prove nothing).
    with page.expect_response(lambda r: r.url.endswith("/static/missing.css")):
        page.evaluate("console.error('probe'); fetch('/static/missing.css')")
    caught = problems.take()
    assert any("console error: probe" in line for line in caught), caught
    assert any("HTTP 404" in line and "missing.css" in line for line in caught), caught


LONG_NAME = "billing " + "export of every invoice of every customer in every region " * 3


def test_the_lists_and_the_overview_fit_a_1280px_window(page, web, admin_user, screenshots):
    """No clipped column at 1280 px, and a long schedule name does not turn the history's
    rows into towers: it is cut with an ellipsis, the whole name in its title."""
    named = walk_objects(admin_user)
    definition = JobDefinition.objects.get(name="tests.touch_file")
    long = save_schedule(
        Schedule(name=LONG_NAME.strip(), job=definition, cron=CRON, params={"path": "/tmp/l"})
    )
    JobRun.objects.create(
        schedule=long,
        periodic_task=long.periodic_task,
        task_name=definition.name,
        scheduled_for=timezone.now(),
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    ui.log_in(page, USERNAME, PASSWORD)
    overflow = """() => {
        const page = document.documentElement.scrollWidth - window.innerWidth;
        const box = document.querySelector('.results');
        return {page, list: box ? box.scrollWidth - box.clientWidth : 0};
    }"""
    for url in (ui.RUNS, ui.SCHEDULES, "/admin/", named["schedule"]):
        page.goto(url)
        screenshots.take(page, f"1280 {url}", full_page=False)
        assert page.evaluate(overflow) == {"page": 0, "list": 0}, url
    page.goto(ui.RUNS)
    rows = page.locator("#result_list tbody tr")
    heights = [box["height"] for box in (r.bounding_box() for r in rows.all()) if box]
    assert heights and max(heights) < 2 * min(heights), heights  # no row three lines tall
    cell = rows.filter(has_text="billing export").locator("td.field-schedule_column a").first
    expect(cell).to_have_attribute("title", re.compile("every region"))
