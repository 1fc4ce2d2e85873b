"""A run's progress bar in a browser, against gunicorn serving the admin on the test
database: the bar on a run's page and in the overview's "running now" follows what the run
history stores, without a reload, and says when the run ended.

Each step leaves a screenshot; the folder is printed and named in the terminal summary.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from scheduler.runs.models import JobRun
from tests.browser import admin_ui as ui
from tests.browser.admin_ui import expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.timeout(120),
]

USERNAME, PASSWORD = "admin", "browser-Progress-pass-5519"
AT = "2026-06-01T12:00:05+00:00"


@pytest.fixture
def admin_user(transactional_db):
    return get_user_model().objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)


def report(run: JobRun, done: float, total: float | None, message: str) -> None:
    JobRun.objects.filter(pk=run.pk).update(
        progress={"done": done, "total": total, "message": message, "at": AT}
    )


def test_the_bar_moves_without_a_reload_and_says_when_the_run_ended(
    page, web, admin_user, screenshots, problems
):
    now = timezone.now()
    run = JobRun.objects.create(
        task_name="tests.progress_steps",
        scheduled_for=now,
        status=JobRun.Status.RUNNING,
        started_at=now,
        worker_host="celery@w1",
    )
    report(run, 2, 10, "resized photo-002.jpg")
    ui.log_in(page, USERNAME, PASSWORD)
    page.goto(f"{ui.RUNS}{run.pk}/change/")
    box = page.locator(".scheduler-progress")
    bar = box.locator("progress")
    expect(bar).to_have_attribute("value", "20")
    expect(box.locator(".scheduler-progress-figures")).to_have_text("2 of 10 (20%)")
    screenshots.take(page, "run page at 20 percent", full_page=False)
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again

    report(run, 7, 10, "resized photo-007.jpg")
    expect(bar).to_have_attribute("value", "70")
    expect(box.locator(".scheduler-progress-message")).to_have_text("resized photo-007.jpg")
    assert page.evaluate("window.notReloaded") is True
    screenshots.take(page, "run page at 70 percent, no reload", full_page=False)

    report(run, 1234, None, "scanning, total not known yet")
    expect(bar).not_to_have_attribute("value", "70")
    assert page.evaluate("document.querySelector('.scheduler-progress progress').position") == -1
    expect(box.locator(".scheduler-progress-figures")).to_have_text("1,234 done")
    screenshots.take(page, "run page, indeterminate", full_page=False)

    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.SUCCEEDED, finished_at=now)
    report(run, 10, 10, "all done")
    expect(box.locator(".scheduler-progress-state")).to_contain_text("The run ended: succeeded.")
    expect(bar).to_have_attribute("value", "100")
    assert page.evaluate("window.notReloaded") is True
    screenshots.take(page, "run page, the run ended", full_page=False)
    expect(box).to_have_attribute("data-active", "false")  # it stopped asking
    assert problems.take() == []


def test_the_overview_shows_running_runs_with_their_bars(
    page, web, admin_user, screenshots, problems
):
    now = timezone.now()
    runs = [
        JobRun.objects.create(
            task_name=name,
            scheduled_for=now,
            status=JobRun.Status.RUNNING,
            started_at=now,
            worker_host="celery@w1",
        )
        for name in ("acme.resize_photos", "acme.import_invoices", "acme.reindex")
    ]
    report(runs[0], 40, 160, "resized photo-040.jpg")
    report(runs[1], 5120, None, "read 5,120 rows")
    page.set_viewport_size({"width": 1280, "height": 900})
    ui.log_in(page, USERNAME, PASSWORD)
    panel = page.locator("#ov-running")
    bars = panel.locator(".scheduler-progress")
    expect(bars).to_have_count(3)
    expect(bars.nth(0).locator("progress")).to_have_attribute("value", "25")
    expect(bars.nth(2)).to_contain_text("no progress reported yet")
    report(runs[2], 1, 4, "shard 1 of 4")
    expect(bars.nth(2).locator("progress")).to_have_attribute("value", "25")
    expect(bars.nth(2)).to_contain_text("shard 1 of 4")
    panel.scroll_into_view_if_needed()
    screenshots.take(page, "overview running now", full_page=False)
    overflow = page.evaluate(
        "() => { const p = document.querySelector('#ov-running');"
        " return p.scrollWidth - p.clientWidth; }"
    )
    assert overflow == 0  # the panel's table fits without a scroll bar
    assert problems.take() == []
