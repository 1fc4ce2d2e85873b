"""The admin as a newcomer meets it: a run's result readable and its status said once, the
schedule form's labels in words, one time format on every page, django-celery-beat's pages
kept out of the way, no platform task offered as a job, a refused backfill that keeps what
was typed, a duplicate that opens, and a cron's either-day rule in words."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from jobs_catalog.models import JobDefinition
from scheduler.alerts.incidents import open_incident, schedule_key
from scheduler.alerts.models import AlertChannel, AlertDelivery
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule

pytestmark = pytest.mark.django_db
Status = JobRun.Status
SCHEDULES = "/admin/scheduler/schedule/"
RUNS = "/admin/scheduler/jobrun/"
CLEANUP = "builtin.file_cleanup"
HTTP_JOB = "builtin.http_request"


def run_url(run: JobRun) -> str:
    return reverse("admin:scheduler_jobrun_change", args=[run.pk])


def change_url(schedule: Schedule) -> str:
    return reverse("admin:scheduler_schedule_change", args=[schedule.pk])


def field_html(page: str, name: str) -> str:
    """The readonly field ``name`` of an admin page: its row's HTML."""
    match = re.search(rf'<div class="form-row[^"]*field-{name}\b.*?</div>\s*</div>', page, re.S)
    assert match, f"no field {name}"
    return match.group(0)


def text_of(page: str) -> str:
    """What a page shows: no scripts, no tags, entities read."""
    page = re.sub(r"<script\b.*?</script>", " ", page, flags=re.S)
    page = re.sub(r"<style\b.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture
def make_run():
    minutes = iter(range(1, 10_000))

    def make(schedule: Schedule | None, **fields) -> JobRun:
        scheduled = fields.pop(
            "scheduled_for",
            timezone.now().replace(microsecond=0) - timedelta(minutes=next(minutes)),
        )
        return JobRun.objects.create(
            schedule=schedule,
            periodic_task=schedule.periodic_task if schedule else None,
            task_name=fields.pop("task_name", schedule.job.name if schedule else "plain.task"),
            scheduled_for=scheduled,
            **{"status": Status.SUCCEEDED, **fields},
        )

    return make


# --- a run's page -----------------------------------------------------------------------------
def test_a_json_result_is_shown_indented_like_the_parameters(admin_client, make_schedule, make_run):
    schedule = make_schedule("cleanup")
    # A result is stored as the repr of what the job returned.
    result = repr({"directory": "/srv/tmp", "dry_run": True, "would_remove": ["a.log", "b.log"]})
    run = make_run(schedule, result=result)
    page = admin_client.get(run_url(run)).content.decode()
    shown = field_html(page, "result_display")
    assert '<pre class="scheduler-pre">{\n  &quot;directory&quot;: &quot;/srv/tmp&quot;,' in shown
    assert "&quot;would_remove&quot;: [\n    &quot;a.log&quot;," in shown
    assert "&quot;dry_run&quot;: true" in shown
    # Text that is no JSON (a cut summary, a plain string) is shown as it is.
    cut = make_run(schedule, result="{'directory': '/srv/tmp', 'items': [1, 2, …")
    shown = field_html(admin_client.get(run_url(cut)).content.decode(), "result_display")
    assert "{&#x27;directory&#x27;: &#x27;/srv/tmp&#x27;, &#x27;items&#x27;: [1, 2, …" in shown


@pytest.mark.parametrize(
    ("status", "badge", "more"),
    [
        (Status.SUCCEEDED, "Succeeded", None),
        (Status.PENDING, "Pending", "committed, not yet published"),
    ],
)
def test_the_status_is_shown_once_on_a_run_page(
    admin_client, make_schedule, make_run, status, badge, more
):
    run = make_run(make_schedule("once"), status=status)
    row = text_of(field_html(admin_client.get(run_url(run)).content.decode(), "status_display"))
    assert row.count(badge) == 1, row
    if more:
        assert row.count(more) == 1, row


def test_the_schedule_form_labels_parameters_in_words_with_their_names(admin_client):
    job = JobDefinition.objects.get(name=CLEANUP)
    page = admin_client.get(f"{SCHEDULES}add/?job={job.pk}").content.decode()
    assert re.search(r'<label[^>]*for="id_param__older_than_days"[^>]*>Older than days:', page)
    assert "<code>older_than_days</code>" in page
    assert re.search(r'<label[^>]*for="id_param__dry_run"[^>]*>Dry run', page)
    assert ">older_than_days:<" not in page


# --- one time format --------------------------------------------------------------------------
#: The one shape: date, time to the second, the zone's abbreviation.
TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (?:[A-Z]{2,5}|[+-]\d{2,4})\b"
#: Django's default English shapes ("Dec. 3, 2026, 2:05 p.m."), which must not show.
DJANGO_SHAPES = (
    r"\b(?:Jan|Feb|Mar|Apr|May|June|July|Aug|Sept|Oct|Nov|Dec)\.? \d{1,2}, \d{4}",
    r"\b[ap]\.m\.",
    r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?[+-]\d{2}:?\d{2}",
)


def assert_one_time_format(page: str, where: str) -> int:
    text = text_of(page)
    for shape in DJANGO_SHAPES:
        assert not re.search(shape, text), (where, re.search(shape, text).group(0))
    dates = re.findall(r"\d{4}-\d{2}-\d{2}[^<\n]{0,16}", text)
    for found in dates:
        assert re.match(TIME, found), (where, found)
    return len(dates)


@pytest.fixture
def everything(make_schedule, make_run, settings):
    """A schedule in another zone than the site's, its runs, an incident and a delivery."""
    settings.TIME_ZONE = "Europe/Berlin"
    schedule = make_schedule("kolkata", cron="30 2 * * *", timezone="Asia/Kolkata")
    now = timezone.now().replace(microsecond=0)
    run = make_run(
        schedule,
        status=Status.FAILED,
        scheduled_for=now - timedelta(hours=1),
        started_at=now - timedelta(minutes=59),
        finished_at=now - timedelta(minutes=58),
        duration=60.0,
        error_type="ValueError",
        error_message="bad",
    )
    incident = open_incident(
        key=schedule_key(schedule.pk, "failed"),
        kind="failed",
        schedule=schedule,
        title="kolkata failed",
        now=now,
        channels=list,
        run=run,
    )
    channel = AlertChannel.objects.create(name="mail", kind="email", recipients="a@example.com")
    delivery = AlertDelivery.objects.create(
        incident=incident,
        channel=channel,
        channel_name="mail",
        event="opened",
        sent_at=now,
        next_attempt_at=now + timedelta(minutes=1),
    )
    incident.acknowledged_at = now
    incident.resolved_at = now
    incident.resolution = "ran again"
    incident.last_notified_at = now
    incident.save()
    PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=now)
    return schedule, run, incident, delivery


def test_every_main_page_writes_times_one_way_with_their_zone(admin_client, everything):
    schedule, run, incident, delivery = everything
    job = JobDefinition.objects.get(name=HTTP_JOB)
    pages = {
        "schedules": SCHEDULES,
        "schedule": change_url(schedule),
        "runs": RUNS,
        "run": run_url(run),
        "incidents": "/admin/scheduler/incident/",
        "incident": f"/admin/scheduler/incident/{incident.pk}/change/",
        "deliveries": "/admin/scheduler/alertdelivery/",
        "delivery": f"/admin/scheduler/alertdelivery/{delivery.pk}/change/",
        "catalog": "/admin/jobs_catalog/jobdefinition/",
        "job": f"/admin/jobs_catalog/jobdefinition/{job.pk}/change/",
        "cron entries": "/admin/django_celery_beat/periodictask/",
    }
    seen = {}
    for where, url in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, where
        seen[where] = assert_one_time_format(response.content.decode(), where)
    # Each page has times to check (the check is not vacuous).
    assert all(seen.values()), seen
    # The site's zone in lists, the schedule's zone on its page (and on the run's).
    runs = text_of(admin_client.get(RUNS).content.decode())
    assert re.search(r"\d{2}:\d{2}:\d{2} CES?T", runs)
    run_page = text_of(admin_client.get(run_url(run)).content.decode())
    assert re.search(r"\d{2}:\d{2}:\d{2} IST", run_page)
    preview = admin_client.get(
        reverse("admin:scheduler_schedule_preview"),
        {"cron": "30 2 * * *", "timezone": "Asia/Kolkata"},
    ).json()
    assert all(re.search(TIME, t) for t in preview["next_display"]), preview["next_display"]


def test_the_formatter_and_djangos_format_agree(settings):
    from django.utils import formats

    from scheduler.formatting import format_time

    settings.TIME_ZONE = "Europe/Berlin"
    moment = datetime(2026, 12, 3, 13, 5, 9, tzinfo=UTC)
    assert format_time(moment) == "2026-12-03 14:05:09 CET"
    assert format_time(moment, "Asia/Kolkata") == "2026-12-03 18:35:09 IST"
    local = timezone.localtime(moment)
    assert formats.date_format(local, "DATETIME_FORMAT") == "2026-12-03 14:05:09 CET"
    assert formats.localize(local) == "2026-12-03 14:05:09 CET"


def test_long_names_are_cut_in_the_lists_with_the_whole_name_in_a_title(
    admin_client, make_schedule, make_run
):
    name = "Nightly export of the customer invoices to the accounting warehouse (EU region)"
    schedule = make_schedule(name)
    make_run(schedule)
    for url in (RUNS, SCHEDULES):
        page = admin_client.get(url).content.decode()
        assert re.search(rf'class="scheduler-clip[^"]*" title="{re.escape(name)}"', page), url
        assert "scheduler/admin.css" in page
    css = Path(finders.find("scheduler/admin.css")).read_text()
    clip = re.search(r"\.scheduler-clip \{(.*?)\}", css, re.S).group(1)
    for rule in ("white-space: nowrap", "text-overflow: ellipsis", "max-width:", "overflow:"):
        assert rule in clip, rule


# --- django-celery-beat's pages ---------------------------------------------------------------
@pytest.fixture
def staff(django_user_model) -> Client:
    """Staff with every permission of every group, django-celery-beat's included: still no
    raw cron entries."""
    user = django_user_model.objects.create_user(username="staff", password="x", is_staff=True)
    for group in Group.objects.all():
        user.groups.add(group)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_celery_beat")
    )
    client = Client()
    client.force_login(user)
    return client


BEAT_PAGES = (
    "admin:django_celery_beat_periodictask_changelist",
    "admin:django_celery_beat_periodictask_add",
    "admin:django_celery_beat_crontabschedule_changelist",
    "admin:django_celery_beat_intervalschedule_changelist",
    "admin:django_celery_beat_solarschedule_changelist",
    "admin:django_celery_beat_clockedschedule_changelist",
)


def test_beat_pages_are_hidden_from_staff_and_point_superusers_to_schedules(
    staff, admin_client, make_schedule
):
    schedule = make_schedule("owned")
    index = staff.get("/admin/").content.decode()
    assert "Periodic tasks" not in index and "django_celery_beat" not in index
    assert "Schedules" in index
    for name in BEAT_PAGES:
        assert staff.get(reverse(name)).status_code in (302, 403), name
        page = admin_client.get(reverse(name))
        assert page.status_code == 200, name
        html_text = page.content.decode()
        assert "scheduler-beat-notice" in html_text, name
        assert f'href="{SCHEDULES}"' in html_text, name
    pages = {
        "admin:django_celery_beat_periodictask_change": schedule.periodic_task_id,
        "admin:django_celery_beat_crontabschedule_change": schedule.periodic_task.crontab_id,
        "admin:django_celery_beat_intervalschedule_change": IntervalSchedule.objects.create(
            every=5, period="minutes"
        ).pk,
    }
    for name, pk in pages.items():
        page = admin_client.get(reverse(name, args=[pk])).content.decode()
        assert "scheduler-beat-notice" in page, name
    # Its own form (the crontab translations) is still the one under the notice.
    page = admin_client.get(reverse("admin:django_celery_beat_periodictask_add")).content.decode()
    assert 'id="periodic-task-overrides"' in page
    assert CrontabSchedule.objects.exists()


def test_platform_tasks_are_not_offered_as_jobs(admin_client, make_schedule):
    PeriodicTask.objects.create(
        name="celery.backend_cleanup",
        task="celery.backend_cleanup",
        crontab=CrontabSchedule.objects.create(minute="0", hour="4"),
    )
    PeriodicTask.objects.create(
        name="delivery sweep",
        task="scheduler.alerts.deliver",
        interval=IntervalSchedule.objects.create(every=1, period="minutes"),
    )
    PeriodicTask.objects.create(
        name="someone's own", task="acme.tasks.report", interval=IntervalSchedule.objects.first()
    )
    # The run history's job filter: catalog jobs and plain entries' tasks, no platform task.
    page = admin_client.get(RUNS).content.decode()
    assert "?job=acme.tasks.report" in page and f"?job={HTTP_JOB}" in page
    assert "?job=celery.backend_cleanup" not in page
    assert "?job=scheduler.alerts.deliver" not in page
    # The job picker offers catalog jobs only, never a platform task.
    JobDefinition.objects.create(
        name="scheduler.alerts.deliver",
        title="Deliver an alert",
        source="the platform",
        module="scheduler.alerts.tasks",
        last_seen=timezone.now(),
        changed_at=timezone.now(),
    )
    internal = JobDefinition.objects.get(name="scheduler.alerts.deliver")
    picker = admin_client.get(f"{SCHEDULES}add/")
    offered = {job.name for job, *_ in picker.context["jobs"]}
    assert HTTP_JOB in offered and "scheduler.alerts.deliver" not in offered
    # Asked for by its id, it is refused: back to the list of jobs.
    assert admin_client.get(f"{SCHEDULES}add/?job={internal.pk}").context["jobs"]
    # django-celery-beat's "Task (registered)" list, for superusers, leaves them out too.
    page = admin_client.get(reverse("admin:django_celery_beat_periodictask_add")).content.decode()
    select = re.search(r'<select name="regtask".*?</select>', page, re.S).group(0)
    assert 'value="scheduler.alerts.deliver"' not in select
    assert not re.search(r'value="celery\.', select)
    assert f'value="{HTTP_JOB}"' in select


# --- actions ----------------------------------------------------------------------------------
def test_a_refused_backfill_shows_the_form_again_with_what_was_typed(admin_client, make_schedule):
    schedule = make_schedule("future", cron="0 * * * *")
    later = timezone.now() + timedelta(days=2)
    typed = {
        "start_0": f"{later:%Y-%m-%d}",
        "start_1": "01:15",
        "end_0": f"{later + timedelta(days=1):%Y-%m-%d}",
        "end_1": "02:45",
    }
    for response in (
        admin_client.post(
            SCHEDULES,
            {"action": "backfill", "_selected_action": [schedule.pk], "post": "yes", **typed},
        ),
        admin_client.post(reverse("admin:scheduler_schedule_backfill", args=[schedule.pk]), typed),
    ):
        assert response.status_code == 200
        page = response.content.decode()
        assert "A backfill covers the past only." in page
        for value in typed.values():
            assert f'value="{value}"' in page, value
    assert not JobRun.objects.filter(schedule=schedule).exists()
    # Too many occurrences: refused the same way, naming the limit.
    end = timezone.now() - timedelta(days=1)
    typed = {
        "start_0": f"{end - timedelta(days=60):%Y-%m-%d}",
        "start_1": "00:00",
        "end_0": f"{end:%Y-%m-%d}",
        "end_1": "00:00",
    }
    response = admin_client.post(
        reverse("admin:scheduler_schedule_backfill", args=[schedule.pk]), typed
    )
    assert "more than 500 occurrences" in response.content.decode()
    assert f'value="{typed["start_0"]}"' in response.content.decode()
    assert not JobRun.objects.filter(schedule=schedule).exists()


def test_duplicate_opens_the_copy(admin_client, make_schedule):
    original = make_schedule("original")
    response = admin_client.post(reverse("admin:scheduler_schedule_duplicate", args=[original.pk]))
    copy = Schedule.objects.get(name="original (copy)")
    assert response.status_code == 302 and response["Location"] == change_url(copy)
    response = admin_client.post(
        SCHEDULES, {"action": "duplicate", "_selected_action": [original.pk], "index": 0}
    )
    second = Schedule.objects.exclude(pk__in=[original.pk, copy.pk]).get()
    assert response.status_code == 302 and response["Location"] == change_url(second)
    # Several at once: back to the list, a link to each copy in the messages.
    before = set(Schedule.objects.values_list("pk", flat=True))
    response = admin_client.post(
        SCHEDULES,
        {"action": "duplicate", "_selected_action": [original.pk, copy.pk], "index": 0},
        follow=True,
    )
    assert response.request["PATH_INFO"] == SCHEDULES
    shown = " ".join(str(m) for m in response.context["messages"])
    for made in Schedule.objects.exclude(pk__in=before):
        assert f'href="{change_url(made)}"' in shown


def test_either_day_crons_are_described_as_cron_fires_them(admin_client, make_schedule):
    make_schedule("thirteenth or friday", cron="0 9 13 * 5")
    payload = admin_client.get(
        reverse("admin:scheduler_schedule_preview"), {"cron": "0 9 13 * 5", "timezone": "UTC"}
    ).json()
    assert payload["description"] == "At 09:00, on day 13 of the month or on Friday"
    days = {datetime.fromisoformat(t).day for t in payload["next"]}
    weekdays = {datetime.fromisoformat(t).weekday() for t in payload["next"]}
    assert 4 in weekdays and (13 in days or len(payload["next"]) == 5)
    listing = admin_client.get(SCHEDULES).content.decode()
    assert "At 09:00, on day 13 of the month or on Friday" in listing


def test_job_descriptions_show_their_literals_as_code(admin_client):
    from jobs_catalog.models import JobDefinition

    JobDefinition.objects.filter(name="builtin.http_request").update(
        description="Calls ``url`` <b>once</b>."
    )
    html = admin_client.get(f"{SCHEDULES}add/").content.decode()
    assert "Calls <code>url</code> &lt;b&gt;once&lt;/b&gt;." in html
    assert "``url``" not in html
