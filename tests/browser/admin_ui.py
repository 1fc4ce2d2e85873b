"""What a person does in the admin, one small function per task, for the browser tests.

Waits are Playwright's own (``expect`` and navigation waits, with the context's default
timeout) or a reload until a condition holds, under a deadline: never a fixed sleep.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

try:
    from playwright.sync_api import Locator, Page, expect
except ImportError:  # the tests skip, or fail under CI (see conftest.browser_or_skip)
    Locator = Page = Any
    expect = None

SCHEDULES = "/admin/scheduler/schedule/"
RUNS = "/admin/scheduler/jobrun/"
INCIDENTS = "/admin/scheduler/incident/"
PREVIEW = re.compile(r"/admin/scheduler/schedule/preview/\?")
RUN_NUMBER = re.compile(r"run #(\d+)")


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/$"))


def messages(page: Page) -> Any:
    return page.locator("ul.messagelist li")


# --- schedules ----------------------------------------------------------------------------
def open_job_picker(page: Page) -> None:
    """Step one of adding a schedule: the catalog's jobs."""
    page.goto(SCHEDULES + "add/")
    expect(page.locator("h1")).to_have_text("Add schedule: choose a job")


def pick_job(page: Page, job_name: str) -> None:
    """The job ``job_name`` chosen on the picker; the schedule's form follows."""
    option = page.locator("#id_job option", has_text=f"({job_name})")
    page.locator("#id_job").select_option(option.get_attribute("value"))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/schedule/add/\?job=\d+"))


def fill_params(page: Page, params: dict[str, str]) -> None:
    """The fields generated from the job's parameters (``param__<name>``)."""
    for name, value in params.items():
        page.locator(f'[name="param__{name}"]').fill(value)


def type_cron(page: Page, expr: str) -> None:
    """Type ``expr`` into the cron field key by key, as a person does, and wait for the
    preview the page fetches from the admin's preview view as one types."""
    field = page.locator("#id_cron")
    field.fill("")
    with page.expect_response(lambda r: bool(PREVIEW.search(r.url))) as answer:
        field.press_sequentially(expr)
    assert answer.value.ok, f"the preview answered HTTP {answer.value.status}"


def open_collapsed(page: Page, title: str) -> None:
    """A collapsed fieldset (``<details>``) of the form, opened."""
    details = page.locator("fieldset details", has=page.locator("summary", has_text=title))
    if details.get_attribute("open") is None:
        details.locator("summary").click()


def save(page: Page) -> None:
    page.locator('input[name="_save"]').click()
    expect(messages(page).first).to_contain_text("was added successfully")


# --- a schedule's buttons -------------------------------------------------------------------
def schedule_page(page: Page, schedule_id: int) -> None:
    page.goto(f"{SCHEDULES}{schedule_id}/change/")


def run_now(page: Page, schedule_id: int) -> int:
    """The "Run now" button of a schedule's page, confirmed; returns the run's number."""
    schedule_page(page, schedule_id)
    page.locator("a.scheduler-action-run").click()
    expect(page.locator("h1")).to_have_text("Run now: are you sure?")
    page.locator('input[type="submit"][value="Run now"]').click()
    done = messages(page).filter(has_text=RUN_NUMBER)
    expect(done).to_have_count(1)
    return int(RUN_NUMBER.search(done.inner_text()).group(1))


def pause(page: Page, schedule_id: int, note: str) -> None:
    schedule_page(page, schedule_id)
    page.locator("a.scheduler-action-pause").click()
    page.locator("#id_note").fill(note)
    page.locator('input[type="submit"][value="Pause"]').click()
    expect(messages(page).first).to_contain_text("Paused ")


def resume(page: Page, schedule_id: int) -> None:
    schedule_page(page, schedule_id)
    page.locator("a.scheduler-action-resume").click()
    page.locator('input[type="submit"][value="Resume"]').click()
    expect(messages(page).first).to_contain_text("Resumed ")


def schedule_state(page: Page, name: str) -> Any:
    """The "next run" cell of schedule ``name`` in the schedules' list: its next fire time,
    or a paused or disabled badge (a paused one's title: the note)."""
    page.goto(SCHEDULES)
    row = page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )
    return row.locator("td.field-next_run")


def status_field(page: Page) -> Any:
    """The schedule page's "status" line (active, or paused with its note)."""
    return page.locator(".field-status_display .readonly")


# --- the run history ------------------------------------------------------------------------
def run_row(page: Page, run_id: int) -> Any:
    return page.locator("#result_list tbody tr").filter(
        has=page.locator(f'a[href*="/jobrun/{run_id}/change/"]')
    )


def reload_until(page: Page, done: Callable[[], bool], timeout: float, what: str) -> None:
    """Reload the page until ``done()`` holds (the admin does not refresh itself)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} on {page.url}")
        page.reload()


def watch_run(page: Page, schedule_id: int, run_id: int, status: str, timeout: float) -> Any:
    """The run history of a schedule, reloaded until run ``run_id`` shows ``status``;
    returns its row."""
    page.goto(f"{RUNS}?schedule={schedule_id}")
    row = run_row(page, run_id)
    badge = row.locator(f".scheduler-status-{status}")
    reload_until(page, lambda: badge.count() == 1, timeout, f"run #{run_id} to be {status}")
    return row


# --- incidents ------------------------------------------------------------------------------
def open_incidents(page: Page) -> Locator:
    """Where an on-call person finds what is failing: the overview's "Failing now" panel."""
    page.goto("/admin/")
    return page.locator("#ov-incidents")


def incident_row(page: Page, schedule_name: str) -> Locator:
    return open_incidents(page).locator("tbody tr").filter(has_text=schedule_name)


def acknowledge(page: Page, schedule_name: str) -> None:
    """Acknowledge the open incident of ``schedule_name`` from the overview."""
    row = incident_row(page, schedule_name)
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Acknowledge").click()
    expect(messages(page).first).to_contain_text("Acknowledged")
    expect(incident_row(page, schedule_name)).to_contain_text("acknowledged by")


# --- the whole admin ------------------------------------------------------------------------
def index_links(page: Page) -> dict[str, list[str]]:
    """From the admin index: each app's page, each model's list and each add page."""
    page.goto("/admin/")
    main = page.locator("#content-main")

    def hrefs(selector: str) -> list[str]:
        return [a.get_attribute("href") for a in main.locator(selector).all()]

    return {
        "apps": hrefs("caption a.section"),
        "lists": hrefs("tr[class^='model-'] th a"),
        "adds": hrefs("a.addlink"),
    }


def first_object_link(page: Page) -> str | None:
    """The change page of a changelist's first row (without the list's filters), if any."""
    links = page.locator("#result_list tbody tr").first.locator("a[href*='/change/']")
    return links.first.get_attribute("href").split("?")[0] if links.count() else None
