"""The schedules admin, through HTTP: the job picker and the parameter form, validation that saves
nothing, the list and its query count, the actions, the groups' permissions, secrets that never
reach a page, and django-celery-beat's admin kept for superusers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from jobs_catalog.models import JobDefinition
from jobs_catalog.secrets import SEALED, unseal
from scheduler.beat.models import BeatEntry
from scheduler.policies import cron
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.web.admin import ScheduleAdmin

pytestmark = pytest.mark.django_db

HTTP_JOB = "builtin.http_request"
SECRET = "tok-Sup3rSecret-4242"
ADD_URL = "/admin/scheduler/schedule/add/"
LIST_URL = "/admin/scheduler/schedule/"
Status = JobRun.Status


def change_url(schedule: Schedule) -> str:
    return reverse("admin:scheduler_schedule_change", args=[schedule.pk])


def action_url(schedule: Schedule, name: str) -> str:
    return reverse(f"admin:scheduler_schedule_{name}", args=[schedule.pk])


@pytest.fixture
def http_job() -> JobDefinition:
    return JobDefinition.objects.get(name=HTTP_JOB)


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "health check",
        "description": "",
        "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin",
        "enabled": "on",
        "overlap_policy": "allow",
        "misfire_policy": "run_once",
        "catchup_window": "3600",
        "max_catchup_runs": "10",
        "jitter": "0",
        "queue": "",
        "param__url": "https://example.com/health",
        "param__method": "GET",
        "param__headers": "X-Probe: admin",
        "param__body": "",
        "param__expected_status": "200, 204",
        "param__contains": "",
        "param__timeout": "5",
        "param__follow_redirects": "on",
        "param__bearer_token": SECRET,
        # The alert overrides inline, left empty (the platform defaults).
        "alert_policy-TOTAL_FORMS": "0",
        "alert_policy-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def counts() -> tuple[int, int, int]:
    return (
        Schedule.objects.count(),
        PeriodicTask.objects.count(),
        CrontabSchedule.objects.count(),
    )


def errors_of(response) -> dict[str, list[str]]:
    return {k: list(v) for k, v in response.context["adminform"].form.errors.items()}


def action_choices(client) -> list[str]:
    response = client.get(LIST_URL)
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:
        return []
    return [value for value, _ in form.fields["action"].choices if value]


def run_action(client, name: str, schedules: list[Schedule], **extra: Any):
    data = {"action": name, "_selected_action": [s.pk for s in schedules], "index": 0, **extra}
    return client.post(LIST_URL, data, follow=True)


def confirm_action(client, name: str, schedules: list[Schedule], **fields: Any):
    data = {"action": name, "_selected_action": [s.pk for s in schedules], "post": "yes"}
    return client.post(LIST_URL, {**data, **fields}, follow=True)


def backfill_range(start: datetime, end: datetime) -> dict[str, str]:
    """The backfill form's fields for (start, end], as wall times."""
    return {
        "start_0": f"{start:%Y-%m-%d}",
        "start_1": f"{start:%H:%M}",
        "end_0": f"{end:%Y-%m-%d}",
        "end_1": f"{end:%H:%M}",
    }


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def admin_schedule(admin_client, http_job) -> Schedule:
    """A schedule made through the admin, with a secret bearer token."""
    response = admin_client.post(f"{ADD_URL}?job={http_job.pk}", form_data())
    assert response.status_code == 302, errors_of(response)
    return Schedule.objects.get(name="health check")


# --- users of each group ----------------------------------------------------------------------
@pytest.fixture
def member(django_user_model, client):
    def make(group: str):
        user = django_user_model.objects.create_user(
            username=group.lower().replace(" ", "-"), password="x", is_staff=True
        )
        user.groups.add(Group.objects.get(name=group))
        client.force_login(user)
        return client

    return make


def test_the_migration_creates_three_groups():
    def perms(group: str) -> set[str]:
        return {
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=group).permissions.select_related("content_type")
        }

    view = {
        "scheduler.view_schedule",
        "scheduler.view_jobrun",
        "jobs_catalog.view_jobdefinition",
    }
    alerts = {"scheduler.view_incident", "scheduler.view_alertpolicy"}
    deliveries = {"scheduler.view_alertdelivery", "scheduler.view_callbackdelivery"}
    tokens = {"scheduler.add_apitoken", "scheduler.view_apitoken", "scheduler.change_apitoken"}
    assert perms("Schedule editors") == view | alerts | deliveries | tokens | {
        "scheduler.add_schedule",
        "scheduler.change_schedule",
        "scheduler.delete_schedule",
        "scheduler.add_alertpolicy",
        "scheduler.change_alertpolicy",
        "scheduler.delete_alertpolicy",
    }
    assert perms("Schedule operators") == view | alerts | deliveries | tokens | {
        "scheduler.run_schedule",
        "scheduler.trigger_job",
        "scheduler.pause_schedule",
        "scheduler.retry_run",
        "scheduler.cancel_run",
        "scheduler.acknowledge_incident",
    }
    assert perms("Schedule viewers") == view | alerts | tokens


# --- adding: the job picker, then the job's form ---------------------------------------------
def test_adding_starts_by_picking_an_available_job(admin_client, http_job):
    now = timezone.now()
    JobDefinition.objects.create(
        name="gone.job", title="Vanished job", available=False, last_seen=now, changed_at=now
    )
    response = admin_client.get(ADD_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "HTTP request / health check" in html and HTTP_JOB in html
    assert f'href="?job={http_job.pk}"' in html
    assert "Vanished job" not in html and "1 more job of the catalog is not installed" in html
    gone = JobDefinition.objects.get(name="gone.job")
    assert "not in the catalog" in admin_client.get(f"{ADD_URL}?job={gone.pk}").content.decode()


def test_the_form_is_made_from_the_job_parameters(admin_client, http_job):
    response = admin_client.get(f"{ADD_URL}?job={http_job.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("url", "method", "headers", "expected_status", "timeout", "follow_redirects"):
        assert f'name="param__{name}"' in html
    assert 'type="password" name="param__bearer_token"' in html
    # No raw JSON of all parameters, no task path, no job select.
    for raw in ('name="params"', 'name="task"', 'name="kwargs"', 'name="job"'):
        assert raw not in html
    assert '<option value="Europe/Berlin">' in html and 'list="id_timezone_zones"' in html
    assert 'data-preview-url="/admin/scheduler/schedule/preview/"' in html
    assert "scheduler/cron_preview.js" in html
    assert "HTTP request / health check" in html  # the job, read-only


def test_adding_saves_the_schedule_and_its_cron_entry(admin_client, http_job):
    before = counts()
    response = admin_client.post(f"{ADD_URL}?job={http_job.pk}", form_data(cron="30 2 * * 1-5"))
    assert response.status_code == 302, errors_of(response)
    assert counts() == (before[0] + 1, before[1] + 1, before[2] + 1)
    schedule = Schedule.objects.get(name="health check")
    assert schedule.job == http_job
    assert schedule.params["headers"] == {"X-Probe": "admin"}
    assert schedule.params["expected_status"] == ["200", "204"]
    assert unseal(schedule.params["bearer_token"]) == SECRET  # stored sealed
    task = schedule.periodic_task
    assert task.task == HTTP_JOB and json.loads(task.kwargs) == schedule.params
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week) == ("30", "2", "1-5")
    assert str(crontab.timezone) == "Europe/Berlin"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"cron": "*/5 * * *"}, "cron", "expected 5 fields"),
        ({"cron": "0 25 * * *"}, "cron", "hour field: value 25 out of range 0-23"),
        ({"timezone": "Europe/Atlantis"}, "timezone", "unknown time zone 'Europe/Atlantis'"),
        (
            {
                "start_at_0": "2026-05-02",
                "start_at_1": "00:00",
                "end_at_0": "2026-05-01",
                "end_at_1": "00:00",
            },
            "end_at",
            "The end must be after the start.",
        ),
        ({"param__url": "ftp://example.com"}, "param__url", "must be an http:// or https:// URL"),
        ({"param__timeout": "301"}, "param__timeout", "less than or equal to 300"),
        ({"param__expected_status": "200\n7xx"}, "param__expected_status", "each entry"),
        ({"param__headers": "Bad Header: x"}, "param__headers", "header names must be"),
        ({"param__url": ""}, "param__url", "This field is required."),
        ({"retry_backoff_base": "-5"}, "retry_backoff_base", "more than 0"),
        ({"retry_max_attempts": "0"}, "retry_max_attempts", "between 1 (no retry) and 100"),
        ({"cron": "0 0 31 2 *"}, "cron", "never fires"),
        ({"jitter": "604800"}, "jitter", "between 0 and 86400"),
        ({"queue": "../../x y"}, "queue", "is no queue name"),
    ],
)
def test_invalid_input_is_a_form_error_and_saves_nothing(
    admin_client, http_job, overrides, field, message
):
    before = counts()
    response = admin_client.post(f"{ADD_URL}?job={http_job.pk}", form_data(**overrides))
    assert response.status_code == 200
    errors = errors_of(response)
    assert any(message in e for e in errors.get(field, [])), errors
    assert counts() == before
    assert SECRET not in response.content.decode()


def test_an_invalid_edit_changes_nothing(admin_client, admin_schedule):
    before = counts()
    task_before = PeriodicTask.objects.get(pk=admin_schedule.periodic_task_id)
    response = admin_client.post(
        change_url(admin_schedule),
        form_data(name="renamed", cron="0 0 31 2 * *", param__bearer_token=""),
    )
    assert response.status_code == 200 and "cron" in errors_of(response)
    assert counts() == before
    schedule = Schedule.objects.get(pk=admin_schedule.pk)
    assert schedule.name == "health check" and schedule.cron == "*/5 * * * *"
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert (task.name, task.crontab_id, task.kwargs) == (
        task_before.name,
        task_before.crontab_id,
        task_before.kwargs,
    )


def test_an_edit_updates_the_cron_entry(admin_client, admin_schedule):
    response = admin_client.post(
        change_url(admin_schedule),
        form_data(cron="15 3 * * *", timezone="Asia/Tokyo", param__bearer_token=""),
    )
    assert response.status_code == 302, errors_of(response)
    crontab = PeriodicTask.objects.get(pk=admin_schedule.periodic_task_id).crontab
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("15", "3", "Asia/Tokyo")


def test_the_job_cannot_be_changed(admin_client, admin_schedule):
    other = JobDefinition.objects.get(name="builtin.management_command")
    page = admin_client.get(change_url(admin_schedule)).content.decode()
    assert 'name="job"' not in page and "choose another job" not in page
    response = admin_client.post(
        change_url(admin_schedule), form_data(job=other.pk, param__bearer_token="")
    )
    assert response.status_code == 302, errors_of(response)
    assert Schedule.objects.get(pk=admin_schedule.pk).job.name == HTTP_JOB


# --- secrets ------------------------------------------------------------------------------------
def test_a_secret_never_reaches_an_admin_page(admin_client, admin_schedule):
    occurrence_list = reverse("admin:scheduler_jobrun_changelist")
    pages = [
        change_url(admin_schedule),
        LIST_URL,
        reverse("admin:scheduler_schedule_history", args=[admin_schedule.pk]),
        reverse("admin:scheduler_schedule_delete", args=[admin_schedule.pk]),
        action_url(admin_schedule, "pause"),
        occurrence_list,
        reverse(
            "admin:django_celery_beat_periodictask_change", args=[admin_schedule.periodic_task_id]
        ),
        reverse(
            "admin:django_celery_beat_crontabschedule_change",
            args=[admin_schedule.periodic_task.crontab_id],
        ),
    ]
    token = Schedule.objects.get(pk=admin_schedule.pk).params["bearer_token"][SEALED]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url
        assert token not in response.content.decode(), url  # nor its sealed form
    page = admin_client.get(change_url(admin_schedule)).content.decode()
    assert "A value is stored." in page


def test_the_change_page_links_to_the_runs(admin_client, admin_schedule):
    JobRun.objects.create(
        schedule=admin_schedule,
        periodic_task=admin_schedule.periodic_task,
        task_name=HTTP_JOB,
        scheduled_for=timezone.now(),
        status=Status.SUCCEEDED,
    )
    page = admin_client.get(change_url(admin_schedule)).content.decode()
    runs = reverse("admin:scheduler_jobrun_changelist")
    runs = f"{runs}?schedule={admin_schedule.pk}"
    assert f'href="{runs}"' in page
    listing = admin_client.get(runs)
    assert listing.status_code == 200 and len(listing.context["cl"].result_list) == 1


def test_saving_with_the_secret_left_blank_keeps_it(admin_client, admin_schedule):
    response = admin_client.post(
        change_url(admin_schedule), form_data(param__bearer_token="", param__timeout="7")
    )
    assert response.status_code == 302, errors_of(response)
    schedule = Schedule.objects.get(pk=admin_schedule.pk)
    assert unseal(schedule.params["bearer_token"]) == SECRET
    assert schedule.params["timeout"] == 7.0
    assert unseal(json.loads(schedule.periodic_task.kwargs)["bearer_token"]) == SECRET
    history = admin_client.get(reverse("admin:scheduler_schedule_history", args=[schedule.pk]))
    assert SECRET not in history.content.decode()


def test_a_view_only_user_sees_masked_parameters(member, admin_schedule):
    client = member("Schedule viewers")
    page = client.get(change_url(admin_schedule)).content.decode()
    assert SECRET not in page and "********" in page
    assert "https://example.com/health" in page


# --- the cron preview -----------------------------------------------------------------------
def test_the_preview_endpoint(admin_client, client):
    url = reverse("admin:scheduler_schedule_preview")
    data = admin_client.get(url, {"cron": "0 9 * * 1-5", "timezone": "America/New_York"}).json()
    assert data["error"] is None
    assert data["description"] == "At 09:00, Monday through Friday"
    assert len(data["next"]) == 5
    first = datetime.fromisoformat(data["next"][0])
    assert first.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))
    assert (first.hour, first.minute) == (9, 0) and first.weekday() < 5
    bad = admin_client.get(url, {"cron": "0 9 * *", "timezone": "UTC"}).json()
    assert "expected 5 fields" in bad["error"] and bad["next"] == []
    assert client.get(url, {"cron": "* * * * *"}).status_code == 302  # to the login page


def test_the_change_page_shows_the_schedule_in_words(admin_client, admin_schedule):
    page = admin_client.get(change_url(admin_schedule)).content.decode()
    assert "Every 5 minutes" in page
    assert page.count("CET (UTC+01:00)") + page.count("CEST (UTC+02:00)") >= 5


# --- the list -----------------------------------------------------------------------------------
def test_the_list_shows_next_and_last_runs(admin_client, make_schedule):
    indexed = make_schedule("indexed", cron="30 2 * * *", timezone="Europe/Berlin")
    computed = make_schedule("computed", cron="0 12 * * *", timezone="UTC")
    paused = make_schedule("paused one", cron="0 * * * *")
    paused.paused_at = timezone.now()
    paused.pause_note = "vendor outage"
    paused.save()
    BeatEntry.objects.update_or_create(
        periodic_task=indexed.periodic_task,
        defaults={"next_fire_at": datetime(2031, 7, 1, 0, 30, tzinfo=UTC)},
    )
    BeatEntry.objects.filter(periodic_task=computed.periodic_task).delete()
    for minute, status in ((0, Status.SUCCEEDED), (5, Status.FAILED)):
        JobRun.objects.create(
            schedule=indexed,
            periodic_task=indexed.periodic_task,
            task_name=HTTP_JOB,
            scheduled_for=datetime(2026, 1, 5, 10, minute, tzinfo=UTC),
            status=status,
        )
    html = admin_client.get(LIST_URL).content.decode()
    assert "At 02:30" in html and "At 12:00" in html
    assert "2031-07-01 02:30:00 CEST" in html  # beat's own next fire time, in the schedule's zone
    expected = cron.next_fire("0 12 * * *", "UTC", timezone.now())
    assert f"{expected:%Y-%m-%d %H:%M:%S} UTC" in html
    assert "2026-01-05 11:05:00 CET" in html and "scheduler-status-failed" in html
    assert "never" in html
    assert 'title="vendor outage">paused</span>' in html


def test_filters_and_search(admin_client, make_schedule):
    ok = make_schedule("backups ok")
    failing = make_schedule("backups failing")
    idle = make_schedule("reports idle")
    for schedule, status in ((ok, Status.SUCCEEDED), (failing, Status.FAILED)):
        JobRun.objects.create(
            schedule=schedule,
            periodic_task=schedule.periodic_task,
            task_name=HTTP_JOB,
            scheduled_for=timezone.now() - timedelta(minutes=1),
            status=status,
        )
    idle.paused_at = timezone.now()
    idle.save()

    def names(**query: str) -> set[str]:
        response = admin_client.get(LIST_URL, query)
        assert response.status_code == 200
        return {s.name for s in response.context["cl"].result_list}

    assert names(last_outcome="failed") == {"backups failing"}
    assert names(last_outcome="never") == {"reports idle"}
    assert names(state="paused") == {"reports idle"}
    assert names(state="active") == {"backups ok", "backups failing"}
    assert names(q="backups") == {"backups ok", "backups failing"}
    assert names(job__id__exact=str(ok.job_id)) == {"backups ok", "backups failing", "reports idle"}


def test_the_list_query_count_does_not_grow_with_rows(
    admin_client, make_schedule, django_assert_max_num_queries
):
    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            schedule = make_schedule(f"s{i:03d}", cron=f"{i % 60} * * * *")
            if i % 2:
                BeatEntry.objects.update_or_create(
                    periodic_task=schedule.periodic_task,
                    defaults={"next_fire_at": timezone.now() + timedelta(hours=1)},
                )
            else:
                BeatEntry.objects.filter(periodic_task=schedule.periodic_task).delete()
            JobRun.objects.create(
                schedule=schedule,
                periodic_task=schedule.periodic_task,
                task_name=HTTP_JOB,
                scheduled_for=timezone.now() - timedelta(minutes=i),
                status=Status.SUCCEEDED,
            )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LIST_URL).status_code == 200
        return len(captured)

    add(2, 0)
    small = queries()
    add(40, 2)
    assert queries() == small
    with django_assert_max_num_queries(small):
        response = admin_client.get(LIST_URL, {"last_outcome": "succeeded", "o": "5"})
    assert len(response.context["cl"].result_list) == 42


def test_next_run_is_computed_without_a_beat_entry(make_schedule):
    schedule = make_schedule("window", cron="0 6 * * *", timezone="Asia/Tokyo")
    BeatEntry.objects.filter(periodic_task=schedule.periodic_task).delete()
    schedule = Schedule.objects.select_related("periodic_task").get(pk=schedule.pk)
    now = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
    assert ScheduleAdmin.next_fire(schedule, now) == datetime(2026, 2, 1, 21, 0, tzinfo=UTC)
    schedule.end_at = datetime(2026, 2, 1, 20, 0, tzinfo=UTC)
    assert ScheduleAdmin.next_fire(schedule, now) is None


# --- actions ----------------------------------------------------------------------------------
def test_run_now_queues_a_manual_run(admin_client, make_schedule):
    schedule = make_schedule("runner")
    response = run_action(admin_client, "run_now", [schedule])
    assert response.status_code == 200
    occurrence = JobRun.objects.get(schedule=schedule)
    assert occurrence.trigger == JobRun.Trigger.MANUAL
    assert occurrence.status == Status.QUEUED
    assert f"runner: run #{occurrence.pk} queued." in page_messages(response)


def test_pause_asks_for_a_note_then_resume(admin_client, make_schedule):
    schedule = make_schedule("pausable")
    first = admin_client.post(
        LIST_URL, {"action": "pause", "_selected_action": [schedule.pk], "index": 0}
    )
    assert first.status_code == 200
    assert 'name="note"' in first.content.decode() and "pausable" in first.content.decode()
    assert not Schedule.objects.get(pk=schedule.pk).is_paused
    response = confirm_action(admin_client, "pause", [schedule], note="database migration")
    schedule.refresh_from_db()
    assert schedule.is_paused and schedule.pause_note == "database migration"
    assert schedule.paused_by.username == "admin"
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False
    assert "Paused pausable." in page_messages(response)
    page = admin_client.get(change_url(schedule)).content.decode()
    assert "database migration" in page and "/resume/" in page

    response = run_action(admin_client, "resume", [schedule])
    schedule.refresh_from_db()
    assert not schedule.is_paused and schedule.pause_note == ""
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True
    assert "Resumed pausable." in page_messages(response)


def test_duplicate_makes_a_disabled_copy(admin_client, admin_schedule):
    response = run_action(admin_client, "duplicate", [admin_schedule])
    copy = Schedule.objects.get(name="health check (copy)")
    assert not copy.enabled and copy.params == admin_schedule.params
    assert copy.periodic_task_id != admin_schedule.periodic_task_id
    assert any("health check (copy)" in m for m in page_messages(response))
    assert SECRET not in response.content.decode()


def test_actions_refuse_a_stored_schedule_that_breaks_the_rules(admin_client, make_schedule):
    schedule = make_schedule("stored badly", cron="0 * * * *")
    # Written past the form (a script, or before the rules held).
    Schedule.objects.filter(pk=schedule.pk).update(queue="../../x y")
    for action in ("duplicate", "run_now"):
        response = run_action(admin_client, action, [schedule])
        assert any(
            "stored badly has invalid settings" in m and "queue:" in m
            for m in page_messages(response)
        ), page_messages(response)
    end = timezone.now() - timedelta(days=1)
    fields = backfill_range(end - timedelta(hours=3), end)
    response = confirm_action(admin_client, "backfill", [schedule], **fields)
    assert any("has invalid settings" in m for m in page_messages(response))
    assert Schedule.objects.count() == 1 and not JobRun.objects.exists()


def test_backfill_asks_for_a_range_in_the_schedule_zone(admin_client, make_schedule):
    schedule = make_schedule("backfilled", cron="0 * * * *", timezone="Asia/Kolkata")
    zone = ZoneInfo("Asia/Kolkata")
    first = admin_client.post(
        LIST_URL, {"action": "backfill", "_selected_action": [schedule.pk], "index": 0}
    )
    assert first.status_code == 200
    page = first.content.decode()
    assert 'name="start_0"' in page and "wall-clock times in Asia/Kolkata" in page
    end = (
        (timezone.now() - timedelta(days=2))
        .astimezone(zone)
        .replace(minute=0, second=0, microsecond=0)
    )
    start = end - timedelta(hours=3)
    response = confirm_action(admin_client, "backfill", [schedule], **backfill_range(start, end))
    made = JobRun.objects.filter(schedule=schedule, trigger=JobRun.Trigger.BACKFILL)
    # Kolkata is UTC+05:30: the cron's hours there are half past the hour in UTC.
    assert sorted(o.scheduled_for.astimezone(zone) for o in made) == [
        start + timedelta(hours=h) for h in (1, 2, 3)
    ]
    assert any("queued 3 occurrence(s)" in m for m in page_messages(response))


def test_backfill_errors_are_said_on_its_page_or_in_messages(admin_client, make_schedule):
    schedule = make_schedule("future", cron="0 * * * *")
    later = timezone.now() + timedelta(days=2)
    fields = {
        "start_0": f"{later:%Y-%m-%d}",
        "start_1": "00:00",
        "end_0": f"{later + timedelta(days=1):%Y-%m-%d}",
        "end_1": "00:00",
    }
    response = confirm_action(admin_client, "backfill", [schedule], **fields)
    assert response.context["form"].non_field_errors() == ["A backfill covers the past only."]
    assert not JobRun.objects.filter(schedule=schedule).exists()

    other = make_schedule("elsewhere", timezone="Asia/Tokyo")
    response = run_action(admin_client, "backfill", [schedule, other])
    assert any("one time zone at a time" in m for m in page_messages(response))


def test_the_change_page_buttons(admin_client, make_schedule):
    schedule = make_schedule("buttons")
    page = admin_client.get(change_url(schedule)).content.decode()
    for name in ("run", "pause", "duplicate", "backfill"):
        assert f'href="{action_url(schedule, name)}"' in page
    assert action_url(schedule, "resume") not in page
    confirm = admin_client.get(action_url(schedule, "run"))
    assert confirm.status_code == 200 and not JobRun.objects.exists()
    response = admin_client.post(action_url(schedule, "run"))
    assert response.status_code == 302 and response["Location"] == change_url(schedule)
    assert JobRun.objects.get(schedule=schedule).trigger == JobRun.Trigger.MANUAL
    admin_client.post(action_url(schedule, "pause"), {"note": "from the button"})
    schedule.refresh_from_db()
    assert schedule.pause_note == "from the button"


# --- permissions --------------------------------------------------------------------------------
def test_an_operator_runs_and_pauses_but_cannot_edit(member, make_schedule):
    client = member("Schedule operators")
    schedule = make_schedule("operated")
    assert set(action_choices(client)) == {"run_now", "pause", "resume", "backfill"}
    page = client.get(change_url(schedule))
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()  # read-only
    before = counts()
    response = client.post(change_url(schedule), form_data(name="hijacked"))
    assert response.status_code == 403
    assert Schedule.objects.get(pk=schedule.pk).name == "operated" and counts() == before
    assert client.get(ADD_URL).status_code == 403

    run_action(client, "run_now", [schedule])
    assert JobRun.objects.filter(schedule=schedule).count() == 1
    client.post(action_url(schedule, "pause"), {"note": "on-call"})
    assert Schedule.objects.get(pk=schedule.pk).is_paused
    assert client.post(action_url(schedule, "duplicate")).status_code == 403


def test_a_viewer_cannot_run(member, make_schedule):
    client = member("Schedule viewers")
    schedule = make_schedule("watched")
    assert action_choices(client) == []
    assert client.get(change_url(schedule)).status_code == 200
    run_action(client, "run_now", [schedule])
    assert client.post(action_url(schedule, "run")).status_code == 403
    assert client.post(action_url(schedule, "pause")).status_code == 403
    assert not JobRun.objects.filter(schedule=schedule).exists()
    assert not Schedule.objects.get(pk=schedule.pk).is_paused
    preview = reverse("admin:scheduler_schedule_preview")
    assert client.get(preview, {"cron": "@daily"}).json()["description"] == "At 00:00"


def test_an_editor_edits_but_does_not_run(member, http_job, make_schedule):
    client = member("Schedule editors")
    assert client.post(f"{ADD_URL}?job={http_job.pk}", form_data()).status_code == 302
    schedule = make_schedule("edited")
    assert "run_now" not in action_choices(client)
    assert client.post(action_url(schedule, "run")).status_code == 403
    assert not JobRun.objects.exists()


# --- django-celery-beat's admin and the occurrences -------------------------------------------
@pytest.fixture
def staff_with_every_scheduler_perm(django_user_model, client):
    user = django_user_model.objects.create_user(username="staff", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["scheduler", "jobs_catalog"])
    )
    client.force_login(user)
    return client


def test_the_raw_beat_admin_is_for_superusers_only(
    staff_with_every_scheduler_perm, admin_client, admin_schedule
):
    staff = staff_with_every_scheduler_perm
    for model in ("periodictask", "crontabschedule", "intervalschedule", "clockedschedule"):
        url = reverse(f"admin:django_celery_beat_{model}_changelist")
        assert staff.get(url).status_code == 403, model
        assert admin_client.get(url).status_code == 200, model
    assert staff.get(reverse("admin:django_celery_beat_periodictask_add")).status_code == 403
    assert "Periodic tasks" not in staff.get("/admin/").content.decode()
    assert staff.get(LIST_URL).status_code == 200


def test_a_schedule_cron_entry_is_read_only_in_the_raw_admin(admin_client, admin_schedule):
    url = reverse(
        "admin:django_celery_beat_periodictask_change", args=[admin_schedule.periodic_task_id]
    )
    page = admin_client.get(url).content.decode()
    assert 'name="kwargs"' not in page and "********" in page and SECRET not in page
    assert change_url(admin_schedule) in page
    response = admin_client.post(url, {"name": "x", "task": "os.system", "kwargs": "{}"})
    assert response.status_code == 403
    assert PeriodicTask.objects.get(pk=admin_schedule.periodic_task_id).task == HTTP_JOB
    crontab = admin_schedule.periodic_task.crontab
    crontab_url = reverse("admin:django_celery_beat_crontabschedule_change", args=[crontab.pk])
    assert admin_client.post(crontab_url, {"minute": "1"}).status_code == 403
    delete_url = reverse("admin:django_celery_beat_crontabschedule_delete", args=[crontab.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Schedule.objects.filter(pk=admin_schedule.pk).exists()
    # Entries no schedule owns stay editable.
    free = CrontabSchedule.objects.create(minute="7")
    free_url = reverse("admin:django_celery_beat_crontabschedule_change", args=[free.pk])
    assert 'name="minute"' in admin_client.get(free_url).content.decode()


def test_occurrences_are_listed_read_only(member, make_schedule):
    schedule = make_schedule("history")
    occurrence = JobRun.objects.create(
        schedule=schedule,
        periodic_task=schedule.periodic_task,
        task_name=HTTP_JOB,
        scheduled_for=timezone.now(),
        status=Status.RUNNING,
    )
    client = member("Schedule viewers")
    listing = client.get(reverse("admin:scheduler_jobrun_changelist"))
    assert listing.status_code == 200
    assert (
        'class="scheduler-badge scheduler-status-running">Running</span>'
        in listing.content.decode()
    )
    assert client.get(reverse("admin:scheduler_jobrun_add")).status_code == 403
    change = reverse("admin:scheduler_jobrun_change", args=[occurrence.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"status": "failed"}).status_code == 403
    assert JobRun.objects.get(pk=occurrence.pk).status == Status.RUNNING
