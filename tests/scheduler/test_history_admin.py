"""The run history admin through HTTP: the list (columns, filters, search, pages, ordering,
no counting, a bounded number of queries), a run's page, the retry and cancel buttons with
their permission matrix, and a schedule's recent runs panel."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.web.history_admin import JobRunAdmin
from tests.scheduler.conftest import drain

pytestmark = pytest.mark.django_db
Status = JobRun.Status
Trigger = JobRun.Trigger
LIST_URL = "/admin/scheduler/jobrun/"
HTTP_JOB = "builtin.http_request"
SECRET = "tok-Hist0rySecret-77"


def run_url(run: JobRun) -> str:
    return reverse("admin:scheduler_jobrun_change", args=[run.pk])


def action_url(run: JobRun, name: str) -> str:
    return reverse(f"admin:scheduler_jobrun_{name}", args=[run.pk])


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def make_run(now):
    """A run of ``schedule`` scheduled ``minutes`` ago (each call its own time)."""
    counter = iter(range(10_000))

    def make(schedule: Schedule | None, minutes: float | None = None, **fields) -> JobRun:
        minutes = next(counter) if minutes is None else minutes
        defaults = {
            "schedule": schedule,
            "periodic_task": schedule.periodic_task if schedule else None,
            "task_name": schedule.job.name if schedule else "plain.task",
            "scheduled_for": now - timedelta(minutes=minutes),
            "status": Status.SUCCEEDED,
        }
        return JobRun.objects.create(**{**defaults, **fields})

    return make


@pytest.fixture
def member(django_user_model):
    def make(group: str | None, *, superuser: bool = False) -> Client:
        name = (group or "root").lower().replace(" ", "-")
        user = django_user_model.objects.create_user(
            username=name, password="x", is_staff=True, is_superuser=superuser
        )
        if group:
            user.groups.add(Group.objects.get(name=group))
        client = Client()
        client.force_login(user)
        return client

    return make


def rows(response) -> list[JobRun]:
    assert response.status_code == 200, response
    return list(response.context["cl"].result_list)


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- the list -----------------------------------------------------------------------------------
def test_the_list_shows_each_run_with_badge_job_schedule_trigger_attempt_and_duration(
    admin_client, make_schedule, make_run
):
    schedule = make_schedule("nightly export")
    make_run(schedule, status=Status.FAILED, attempt=2, max_attempts=3, duration=75.2)
    html = admin_client.get(LIST_URL).content.decode()
    assert 'class="scheduler-badge scheduler-status-failed">Failed</span>' in html
    assert HTTP_JOB in html and "2 of 3" in html and "1 min 15 s" in html
    schedule_page = reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    link = f'<a href="{schedule_page}" class="scheduler-clip" title="nightly export">'
    assert f"{link}nightly export</a>" in html
    assert f'href="?schedule={schedule.pk}"' in html
    assert ">Beat<" in html
    # No counting anywhere on the page, and no "show all".
    assert "1 run on this page" in html and 'class="showall"' not in html
    assert not re.search(r"\d+ (results?|total|run history)\b", html)


def test_the_list_never_counts_and_its_queries_do_not_grow_with_the_rows(
    admin_client, make_schedule, make_run
):
    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LIST_URL).status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    for i in range(3):
        make_run(make_schedule(f"few {i}"))
    few = queries()
    for i in range(30):
        make_run(make_schedule(f"many {i}"), status=Status.FAILED)
    many = queries()
    assert len(many) == len(few)
    assert not [q for q in many if "COUNT(" in q.upper()]
    history = [q for q in many if 'FROM "scheduler_jobrun"' in q]
    assert len(history) == 1
    # One query for the page: the schedule comes joined, the heavy text fields stay behind.
    assert 'JOIN "scheduler_schedule"' in history[0]
    assert '"traceback"' not in history[0] and '"logs"' not in history[0]
    assert re.search(r'ORDER BY .*"scheduled_for" DESC, .*"id" DESC', history[0])


def test_pages_go_forward_and_back_without_a_count(
    admin_client, make_schedule, make_run, monkeypatch
):
    monkeypatch.setattr(JobRunAdmin, "list_per_page", 3)
    schedule = make_schedule()
    made = [make_run(schedule, minutes=m) for m in range(7)]  # made[0] is the newest
    first = admin_client.get(LIST_URL)
    assert [r.pk for r in rows(first)] == [r.pk for r in made[:3]]
    html = first.content.decode()
    assert 'rel="next"' in html and 'href="?p=2"' in html and 'rel="prev"' not in html
    second = admin_client.get(LIST_URL, {"p": 2})
    assert [r.pk for r in rows(second)] == [r.pk for r in made[3:6]]
    assert 'rel="prev"' in second.content.decode()
    last = admin_client.get(LIST_URL, {"p": 3})
    assert [r.pk for r in rows(last)] == [made[6].pk]
    assert 'rel="next"' not in last.content.decode()
    beyond = admin_client.get(LIST_URL, {"p": 9})
    assert rows(beyond) == [] and "No runs" in beyond.content.decode()
    # "Show all" would read the whole table: it is not offered, and asking does nothing.
    assert len(rows(admin_client.get(LIST_URL, {"all": ""}))) == 3


def test_only_the_scheduled_time_sorts_both_ways(admin_client, make_schedule, make_run, now):
    schedule = make_schedule()
    older = make_run(schedule, minutes=10)
    newer = make_run(schedule, minutes=1)
    same_time = make_run(schedule, minutes=1, attempt=2, occurrence=newer)
    assert [r.pk for r in rows(admin_client.get(LIST_URL))] == [same_time.pk, newer.pk, older.pk]
    oldest_first = rows(admin_client.get(LIST_URL, {"o": "0"}))
    assert [r.pk for r in oldest_first] == [older.pk, newer.pk, same_time.pk]
    # Any other column (or junk) falls back to newest first.
    for other in ("1", "-3", "2.0", "x"):
        assert rows(admin_client.get(LIST_URL, {"o": other}))[0].pk == same_time.pk


def test_filters(admin_client, make_schedule, make_run, now):
    alpha = make_schedule("alpha backup")
    beta = make_schedule(
        "beta report", job="builtin.management_command", params={"command": "clearsessions"}
    )
    failed = make_run(alpha, minutes=5, status=Status.FAILED)
    manual = make_run(alpha, minutes=6, trigger=Trigger.MANUAL)
    old = make_run(beta, minutes=60 * 24 * 10)
    plain = make_run(None, minutes=8)

    def pks(**params) -> set[int]:
        return {r.pk for r in rows(admin_client.get(LIST_URL, params))}

    assert pks(status__exact="failed") == {failed.pk}
    assert pks(trigger__exact="manual") == {manual.pk}
    assert pks(job="builtin.management_command") == {old.pk}
    assert pks(job="plain.task") == {plain.pk}  # exact names, even those not listed
    assert pks(schedule=alpha.pk) == {failed.pk, manual.pk}
    assert pks(schedule_name="ALPHA") == {failed.pk, manual.pk}
    assert pks(schedule_name="report") == set()  # a prefix, not a substring
    today = timezone.localdate()
    made = (failed, manual, old, plain)
    assert pks(scheduled="today") == {
        r.pk for r in made if timezone.localtime(r.scheduled_for).date() == today
    }
    assert pks(scheduled="7d") == {failed.pk, manual.pk, plain.pk}
    assert pks(scheduled="30d") == {failed.pk, manual.pk, old.pk, plain.pk}
    day = timezone.localtime(old.scheduled_for).date().isoformat()
    assert pks(scheduled_from=day, scheduled_to=day) == {old.pk}
    assert pks(schedule=alpha.pk, status__exact="succeeded") == {manual.pk}
    page = admin_client.get(LIST_URL, {"schedule": alpha.pk}).content.decode()
    assert f"alpha backup (#{alpha.pk})" in page
    # The job filter lists the catalog, not a DISTINCT over the history.
    assert "?job=builtin.management_command" in page


def test_bad_or_unindexed_lookups_are_refused(admin_client, make_schedule, make_run):
    make_run(make_schedule(), traceback="boom")
    assert admin_client.get(LIST_URL, {"traceback__contains": "boom"}).status_code == 400
    assert admin_client.get(LIST_URL, {"schedule__name__icontains": "x"}).status_code == 400
    # Values a filter cannot read: Django's "?e=1" page, not an error.
    assert admin_client.get(LIST_URL, {"schedule": "abc"}).status_code == 302
    assert admin_client.get(LIST_URL, {"scheduled": "forever"}).status_code == 302
    response = admin_client.get(LIST_URL, {"scheduled_from": "yesterday"}, follow=True)
    assert "is not a day" in " ".join(page_messages(response))


def test_search_uses_exact_ids_and_name_prefixes_only(admin_client, make_schedule, make_run):
    alpha = make_schedule("alpha backup")
    beta = make_schedule(
        "beta report", job="builtin.management_command", params={"command": "clearsessions"}
    )
    a = make_run(alpha)
    b = make_run(beta)
    plain = make_run(None, task_name="celery.backend_cleanup")

    def found(term: str) -> set[int]:
        with CaptureQueriesContext(connection) as captured:
            result = {r.pk for r in rows(admin_client.get(LIST_URL, {"q": term}))}
        history = [q["sql"] for q in captured.captured_queries if "scheduler_jobrun" in q["sql"]]
        assert not [q for q in history if "LIKE" in q.upper()], history
        return result

    assert found(str(b.task_id)) == {b.pk}
    assert found(str(uuid.uuid4())) == set()
    assert found(f"#{a.pk}") == {a.pk} and found(str(a.pk)) == {a.pk}
    assert found("Alpha") == {a.pk}
    assert found("backup") == set()  # prefixes only: no substring scan
    assert found("builtin.manage") == {b.pk}
    assert found("builtin.") == {a.pk, b.pk}
    assert found("nothing-like-this") == set()
    assert found("9" * 30) == set()
    assert plain.pk not in found("alpha")


# --- a run's page -----------------------------------------------------------------------------
def test_a_run_page_shows_every_field_readably_and_masks_secrets(
    admin_client, make_schedule, make_run
):
    schedule = make_schedule("berlin check", timezone="Europe/Berlin")
    first = make_run(schedule, status=Status.FAILED, attempt=1, max_attempts=3)
    moment = timezone.now().replace(month=7, day=1, hour=10, minute=0, second=5, microsecond=0)
    run = make_run(
        schedule,
        scheduled_for=first.scheduled_for,
        occurrence=first,
        attempt=2,
        max_attempts=3,
        trigger=Trigger.RETRY,
        status=Status.FAILED,
        params={"url": "https://example.com", "bearer_token": SECRET},
        started_at=moment,
        finished_at=moment + timedelta(seconds=3),
        duration=3.0,
        worker_host="worker-7",
        worker_pid=4242,
        result="",
        error_type="ConnectionError",
        error_message="refused <b>",
        traceback='Traceback (most recent call last):\n  File "x.py", line 1\nConnectionError',
        logs="INFO starting\nERROR refused",
        note="retried by policy",
    )
    third = make_run(
        schedule, scheduled_for=first.scheduled_for, occurrence=first, attempt=3, max_attempts=3
    )
    html = admin_client.get(run_url(run)).content.decode()
    assert SECRET not in html and "********" in html
    assert "&quot;url&quot;: &quot;https://example.com&quot;" in html  # pretty-printed JSON
    assert '<pre class="scheduler-pre">Traceback (most recent call last):' in html
    assert '<pre class="scheduler-pre">INFO starting\nERROR refused</pre>' in html
    assert "refused &lt;b&gt;" in html and "<code>ConnectionError</code>" in html
    assert f"{moment.year}-07-01 12:00:05 CEST <span" in html  # its zone, then UTC
    assert "worker-7 (pid 4242)" in html and str(run.task_id) in html
    assert "2 of 3" in html
    for other in (first, third):
        assert f'href="{run_url(other)}"' in html
    assert "(this page)" in html
    schedule_page = reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    assert f'href="{schedule_page}"' in html
    # Read-only: no form fields, nothing to save.
    assert 'name="_save"' not in html and 'name="status"' not in html
    assert admin_client.post(run_url(run), {"status": "succeeded"}).status_code == 403
    assert JobRun.objects.get(pk=run.pk).status == Status.FAILED


def test_a_run_without_schedule_shows_its_times_in_the_site_zone(admin_client, make_run):
    run = make_run(None, started_at=timezone.now())
    html = admin_client.get(run_url(run)).content.decode()
    assert "none (its schedule was deleted, or the run did not come from one)" in html
    assert " UTC" in html


# --- actions: retry and cancel ----------------------------------------------------------------
GROUPS = ("Schedule viewers", "Schedule editors", "Schedule operators")


@pytest.mark.parametrize(
    ("group", "allowed"),
    [
        ("Schedule viewers", False),
        ("Schedule editors", False),
        ("Schedule operators", True),
        (None, True),  # a superuser
    ],
)
def test_the_permission_matrix_of_retry_and_cancel(
    member, make_schedule, make_run, queue_name, group, allowed
):
    client = member(group, superuser=group is None)
    schedule = make_schedule()
    failed = make_run(schedule, status=Status.FAILED)
    queued = make_run(schedule, status=Status.QUEUED)
    page = client.get(run_url(failed)).content.decode()
    assert ("scheduler-action-retry" in page) is allowed
    assert "scheduler-action-cancel" not in page  # a failed run cannot be cancelled
    assert ("scheduler-action-cancel" in client.get(run_url(queued)).content.decode()) is allowed
    before = JobRun.objects.count()
    retry = client.post(action_url(failed, "retry"))
    cancel = client.post(action_url(queued, "cancel"))
    if allowed:
        assert retry.status_code == cancel.status_code == 302
        assert JobRun.objects.count() == before + 1
        assert JobRun.objects.get(pk=queued.pk).status == Status.CANCELLED
        drain(queue_name)
    else:
        assert retry.status_code == cancel.status_code == 403
        assert JobRun.objects.count() == before
        assert JobRun.objects.get(pk=queued.pk).status == Status.QUEUED


def test_actions_are_post_only_and_need_the_csrf_token(django_user_model, make_schedule, make_run):
    user = django_user_model.objects.create_superuser("root", password="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    queued = make_run(make_schedule(), status=Status.QUEUED)
    assert client.get(action_url(queued, "cancel")).status_code == 405
    assert client.post(action_url(queued, "cancel")).status_code == 403  # no token
    assert JobRun.objects.get(pk=queued.pk).status == Status.QUEUED
    page = client.get(run_url(queued)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(action_url(queued, "cancel"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert JobRun.objects.get(pk=queued.pk).status == Status.CANCELLED


def test_retry_adds_the_next_attempt_commits_then_publishes_it(
    admin_client, admin_user, make_schedule, make_run, queue_name
):
    schedule = make_schedule()
    first = make_run(schedule, status=Status.FAILED, max_attempts=2)
    second = make_run(
        schedule,
        scheduled_for=first.scheduled_for,
        occurrence=first,
        attempt=2,
        max_attempts=2,
        trigger=Trigger.RETRY,
        status=Status.TIMED_OUT,
        params={"url": "https://example.com/health"},
    )
    # Retrying from the first attempt's page still adds attempt 3 of the occurrence.
    response = admin_client.post(action_url(first, "retry"), follow=True)
    retry = JobRun.objects.get(occurrence=first, attempt=3)
    assert response.redirect_chain[-1][0] == run_url(retry)
    assert any("Retry queued: attempt 3" in m for m in page_messages(response))
    assert retry.trigger == Trigger.RETRY and retry.max_attempts == 3
    assert retry.scheduled_for == first.scheduled_for and retry.schedule == schedule
    assert retry.status == Status.QUEUED and retry.published_at is not None
    assert retry.params == second.params
    assert f"Retried by {admin_user.get_username()}" in retry.note
    [(headers, kwargs)] = drain(queue_name)
    assert headers["occurrence_id"] == retry.pk and headers["trigger"] == "retry"
    assert headers["id"] == str(retry.task_id)
    assert kwargs == schedule.params
    # The admin's log says who did it.
    history = admin_client.get(reverse("admin:scheduler_jobrun_history", args=[first.pk]))
    assert f"Retried as run #{retry.pk}" in history.content.decode()


@pytest.mark.parametrize(
    ("statuses", "refusal"),
    [
        ([Status.SUCCEEDED], "succeeded, so there is nothing to retry"),
        ([Status.FAILED, Status.QUEUED], "Attempt 2 of this occurrence is still queued"),
        ([Status.FAILED, Status.SUCCEEDED], "Attempt 2 of this occurrence succeeded"),
        ([Status.RUNNING], "still running"),
    ],
)
def test_retry_refuses_and_changes_nothing(
    admin_client, make_schedule, make_run, queue_name, statuses, refusal
):
    schedule = make_schedule()
    first = make_run(schedule, status=statuses[0])
    for n, status in enumerate(statuses[1:], start=2):
        make_run(
            schedule, scheduled_for=first.scheduled_for, occurrence=first, attempt=n, status=status
        )
    before = list(JobRun.objects.order_by("pk").values_list("pk", "status"))
    response = admin_client.post(action_url(first, "retry"), follow=True)
    assert response.redirect_chain[-1][0] == run_url(first)
    assert any(refusal in m for m in page_messages(response)), page_messages(response)
    assert list(JobRun.objects.order_by("pk").values_list("pk", "status")) == before
    assert drain(queue_name, timeout=0.3) == []


def test_retry_of_a_run_whose_schedule_is_gone_is_refused(admin_client, make_schedule, make_run):
    schedule = make_schedule()
    run = make_run(schedule, status=Status.FAILED)
    schedule.delete()  # the cron entry goes with it
    response = admin_client.post(action_url(run, "retry"), follow=True)
    assert any("no longer exists" in m for m in page_messages(response))
    assert JobRun.objects.count() == 1


@pytest.mark.parametrize("status", [Status.PENDING, Status.QUEUED, Status.BUFFERED])
def test_cancel_a_run_still_to_run(admin_client, admin_user, make_schedule, make_run, status):
    run = make_run(make_schedule(), status=status, note="waits")
    response = admin_client.post(action_url(run, "cancel"), follow=True)
    assert any("cancelled: it will not run" in m for m in page_messages(response))
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and run.finished_at is not None
    assert run.note.startswith("waits\nCancelled by " + admin_user.get_username())
    assert f"(was {status})" in run.note


def test_cancel_a_running_run_records_who_and_when(admin_client, make_schedule, make_run):
    started = timezone.now() - timedelta(seconds=30)
    run = make_run(make_schedule(), status=Status.RUNNING, started_at=started)
    page = admin_client.get(run_url(run)).content.decode()
    assert "Cancel (stop the job)" in page and "scheduler-action-retry" not in page
    response = admin_client.post(action_url(run, "cancel"), follow=True)
    assert any("its worker was told to stop it" in m for m in page_messages(response))
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and run.duration >= 30
    assert "Cancelled by admin" in run.note and "(was running)" in run.note


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_cancel_refuses_a_finished_run(admin_client, make_schedule, make_run, status):
    run = make_run(make_schedule(), status=status)
    response = admin_client.post(action_url(run, "cancel"), follow=True)
    assert any(
        "only a pending, queued, buffered or running run" in m for m in page_messages(response)
    )
    fresh = JobRun.objects.get(pk=run.pk)
    assert (fresh.status, fresh.note, fresh.finished_at) == (status, "", None)


def test_an_action_on_a_missing_run_redirects_with_a_message(admin_client):
    response = admin_client.post("/admin/scheduler/jobrun/999999/cancel/", follow=True)
    assert response.status_code == 200
    assert any("999999" in m and "exist" in m for m in page_messages(response))


# --- the schedule's page: recent runs -------------------------------------------------------
def test_the_schedule_page_summarises_its_recent_runs(admin_client, make_schedule, make_run):
    schedule = make_schedule("summarised", timezone="Europe/Berlin")
    other = make_schedule("other")
    make_run(other, minutes=0, status=Status.FAILED)  # not this schedule's
    durations = [1.0, 2.0, 3.0, 4.0, 100.0]
    for i, d in enumerate(durations):
        make_run(schedule, minutes=10 + i, duration=d)
    make_run(schedule, minutes=20, status=Status.FAILED, duration=0.5)
    make_run(schedule, minutes=21, status=Status.SKIPPED)  # not an outcome
    newest = make_run(schedule, minutes=5, status=Status.RUNNING)
    url = reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    html = admin_client.get(url).content.decode()
    assert "Recent runs" in html
    assert "<strong>83%</strong> succeeded (5 of 6)" in html
    assert "median 3.0 s, p95 1 min 40 s" in html
    assert f'href="{run_url(newest)}"' in html
    assert 'scheduler-status-running">Running' in html
    assert " CEST" in html or " CET" in html
    assert f'href="/admin/scheduler/jobrun/?schedule={schedule.pk}"' in html


def test_the_schedule_page_reads_a_bounded_number_of_runs(
    admin_client, make_schedule, make_run, now
):
    schedule = make_schedule()
    url = reverse("admin:scheduler_schedule_change", args=[schedule.pk])

    def history_queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return [q["sql"] for q in captured.captured_queries if "scheduler_jobrun" in q["sql"]]

    make_run(schedule)
    few = history_queries()
    JobRun.objects.bulk_create(
        JobRun(
            schedule=schedule,
            periodic_task=schedule.periodic_task,
            task_name=HTTP_JOB,
            scheduled_for=now - timedelta(hours=1, minutes=i),
            status=Status.SUCCEEDED,
            duration=1.0,
        )
        for i in range(300)
    )
    many = history_queries()
    assert len(many) == len(few)
    limits = [int(m) for q in many for m in re.findall(r"LIMIT (\d+)", q)]
    assert 100 in limits and 200 in limits  # the last runs (sparkline), the sample
    html = admin_client.get(url).content.decode()
    assert html.count('<tr><td><a href="/admin/scheduler/jobrun/') == 20
    spark = re.search(r'<div class="scheduler-spark">(.*?)</div>', html, re.S).group(1)
    assert spark.count("<rect ") == 100


def test_a_schedule_page_draws_its_last_runs_as_a_sparkline(admin_client, make_schedule, make_run):
    schedule = make_schedule()
    make_run(schedule, 3, status=Status.SUCCEEDED, duration=2.0)
    make_run(schedule, 2, status=Status.FAILED, duration=8.0)
    make_run(schedule, 1, status=Status.SKIPPED)
    url = reverse("admin:scheduler_schedule_change", args=[schedule.pk])
    html = admin_client.get(url).content.decode()
    spark = re.search(r'<div class="scheduler-spark">(.*?)</div>', html, re.S).group(1)
    bars = re.findall(
        r'<rect class="bar ([\w-]+)"[^>]*height="([\d.]+)"><title>([^<]*)</title>', spark
    )
    # Oldest first, coloured by outcome, as tall as the duration (the longest fills it).
    assert [css for css, _, _ in bars] == ["ok", "failed", "skipped"]
    heights = [float(h) for _, h, _ in bars]
    assert heights[1] == 40 and heights[0] == 10 and heights[2] < heights[0]
    assert "Failed, 8.0 s" in bars[1][2]
    assert "last 3 runs" in spark


def test_viewers_without_history_permission_see_no_runs_panel(
    django_user_model, make_schedule, make_run
):
    schedule = make_schedule()
    make_run(schedule)
    user = django_user_model.objects.create_user("plain", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    client = Client()
    client.force_login(user)
    html = client.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk])).content
    assert b"Recent runs" not in html
