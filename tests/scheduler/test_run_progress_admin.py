"""A run's progress in the admin: the bar on the run's page and in the overview's "running
now", and the JSON its script polls (guarded by the view permission of runs)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from scheduler.runs.models import JobRun
from scheduler.web.run_progress import POLL_EVERY_MS, Shown, amount

pytestmark = pytest.mark.django_db
Status = JobRun.Status
JOB = "builtin.http_request"
AT = "2026-06-01T12:00:05+00:00"


def progress_url(run_id: int) -> str:
    return reverse("admin:scheduler_jobrun_progress", args=[run_id])


def page_url(run: JobRun) -> str:
    return reverse("admin:scheduler_jobrun_change", args=[run.pk])


@pytest.fixture
def make_run():
    def make(status: str = Status.RUNNING, progress: dict | None = None, **fields) -> JobRun:
        now = timezone.now()
        return JobRun.objects.create(
            task_name=JOB,
            scheduled_for=now - timedelta(minutes=3),
            started_at=now - timedelta(minutes=3) if status != Status.QUEUED else None,
            status=status,
            progress=progress,
            worker_host="celery@w1",
            **fields,
        )

    return make


@pytest.fixture
def user_client(django_user_model):
    def make(name: str, group: str | None = None, *, staff: bool = True) -> Client:
        user = django_user_model.objects.create_user(username=name, password="x", is_staff=staff)
        if group:
            user.groups.add(Group.objects.get(name=group))
        client = Client()
        client.force_login(user)
        return client

    return make


# --- the JSON ------------------------------------------------------------------------------------
def test_the_json_gives_the_status_and_the_worded_progress(admin_client, make_run):
    run = make_run(progress={"done": 1250, "total": 5000, "message": "copying b.txt", "at": AT})
    response = admin_client.get(progress_url(run.pk))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]  # always read afresh
    assert response.json() == {
        "id": run.pk,
        "status": "running",
        "status_label": "Running",
        "active": True,
        "progress": {"done": 1250, "total": 5000, "message": "copying b.txt", "at": AT},
        "percent": 25,
        "figures": "1,250 of 5,000 (25%)",
        "message": "copying b.txt",
        "reported_at": "reported 2026-06-01 12:00:05 UTC",
    }


def test_the_json_of_a_run_with_no_report_and_of_one_that_ended(admin_client, make_run):
    queued = admin_client.get(progress_url(make_run(Status.QUEUED).pk)).json()
    assert (queued["active"], queued["progress"], queued["percent"]) == (True, None, None)
    assert queued["figures"] == "no progress reported yet"
    done = make_run(Status.SUCCEEDED, {"done": 7, "total": None, "message": "", "at": AT})
    ended = admin_client.get(progress_url(done.pk)).json()
    assert (ended["active"], ended["status_label"], ended["percent"]) == (
        False,
        "Succeeded",
        None,
    )
    assert ended["figures"] == "7 done"


def test_the_json_needs_the_view_permission_of_runs(make_run, user_client):
    run = make_run(progress={"done": 1, "total": 2, "message": "secret-free", "at": AT})
    url = progress_url(run.pk)
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    not_staff = user_client("visitor", "Schedule viewers", staff=False).get(url)
    assert not_staff.status_code == 302
    without = user_client("nobody").get(url)
    assert without.status_code == 403 and b"secret-free" not in without.content
    viewer = user_client("viewer", "Schedule viewers").get(url)
    assert viewer.status_code == 200 and viewer.json()["percent"] == 50


def test_the_json_of_no_such_run_is_a_404(admin_client, make_run):
    assert admin_client.get(progress_url(999_999)).status_code == 404
    response = admin_client.get("/admin/scheduler/jobrun/not-a-number/progress/")
    assert response.status_code == 404 and response.json() == {"error": "No such run."}


# --- the run's page ------------------------------------------------------------------------------
def test_an_active_runs_page_shows_a_live_bar(admin_client, make_run):
    run = make_run(progress={"done": 3, "total": 4, "message": "almost <there>", "at": AT})
    html = admin_client.get(page_url(run)).content.decode()
    box = re.search(r'<div class="scheduler-progress"[^>]*>.*?</div>', html, re.S).group(0)
    assert f'data-progress-url="{progress_url(run.pk)}"' in box
    assert 'data-active="true"' in box and f'data-every="{POLL_EVERY_MS}"' in box
    assert '<progress class="scheduler-progress-bar" max="100" value="75">75%</progress>' in box
    assert "3 of 4 (75%)" in box and "almost &lt;there&gt;" in box  # escaped
    assert "scheduler/run_progress.js" in html and "scheduler/run_progress.css" in html


def test_a_bar_with_no_total_is_indeterminate(admin_client, make_run):
    run = make_run(progress={"done": 12, "total": None, "message": "", "at": AT})
    html = admin_client.get(page_url(run)).content.decode()
    assert '<progress class="scheduler-progress-bar"></progress>' in html  # no value
    assert "12 done" in html


def test_a_waiting_run_polls_for_a_first_report(admin_client, make_run):
    html = admin_client.get(page_url(make_run(Status.QUEUED))).content.decode()
    assert '<progress class="scheduler-progress-bar" hidden></progress>' in html
    assert 'data-active="true"' in html and "no progress reported yet" in html


def test_an_ended_run_shows_its_last_report_and_polls_nothing(admin_client, make_run):
    run = make_run(Status.CANCELLED, {"done": 40, "total": 100, "message": "stopped", "at": AT})
    html = admin_client.get(page_url(run)).content.decode()
    assert 'data-active="false"' in html and "40 of 100 (40%)" in html


def test_a_run_that_never_reported_has_no_progress_row(admin_client, make_run):
    html = admin_client.get(page_url(make_run(Status.SUCCEEDED))).content.decode()
    assert "scheduler-progress" not in html.split("<fieldset", 1)[1]
    assert "field-progress_display" not in html


# --- the overview ---------------------------------------------------------------------------------
def test_the_overview_shows_each_running_runs_progress(admin_client, make_run):
    make_run(progress={"done": 30, "total": 120, "message": "file 30 of 120", "at": AT})
    make_run()  # no report yet
    html = admin_client.get("/admin/").content.decode()
    running = re.search(r'id="ov-running">(.*?)</section>', html, re.S).group(1)
    assert "<th>Progress</th>" in running
    assert running.count('class="scheduler-progress"') == 2
    assert 'value="25"' in running and "30 of 120 (25%)" in running
    assert "file 30 of 120" in running and "no progress reported yet" in running
    assert "scheduler/run_progress.js" in html and "scheduler/run_progress.css" in html


# --- the wording ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("progress", "percent", "figures"),
    [
        (None, None, "no progress reported yet"),
        ({"done": 0, "total": 10}, 0, "0 of 10 (0%)"),
        ({"done": 999, "total": 1000}, 99, "999 of 1,000 (99%)"),  # never 100% too soon
        ({"done": 12, "total": 10}, 100, "12 of 10 (100%)"),
        ({"done": 2.5, "total": 600.0}, 0, "2.5 of 600 (0%)"),
        ({"done": 5, "total": 0}, None, "5 done"),
        ({"done": "5", "total": 10}, None, "no progress reported yet"),  # not a number
        ("garbage", None, "no progress reported yet"),
    ],
)
def test_the_figures(progress, percent, figures):
    shown = Shown.of(progress)
    assert (shown.percent, shown.figures) == (percent, figures)


def test_amounts_read_as_people_read_them():
    assert [amount(v) for v in (3, 1234567, 2.0, 0.25, None)] == [
        "3",
        "1,234,567",
        "2",
        "0.2",
        "?",
    ]
