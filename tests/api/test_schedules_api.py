"""Schedules over HTTP: the admin's rules and permissions, nothing changed on a refusal."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from jobs_catalog.secrets import is_sealed
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db

NEW = {"name": "nightly touch", "job": "tests.touch_file", "cron": "30 2 * * *",
       "timezone": "Europe/Berlin", "params": {"path": "/tmp/nightly"}}  # fmt: skip


def created(editor, **changes) -> dict:
    response = editor.post("/api/schedules", {**NEW, **changes})
    assert response.status_code == 201, response.content
    return response.json()


def test_create_saves_the_schedule_and_its_cron_entry(editor):
    response = editor.post("/api/schedules", NEW)
    assert response.status_code == 201
    body = response.json()
    assert response["Location"].endswith(f"/api/schedules/{body['id']}")
    schedule = Schedule.objects.get(pk=body["id"])
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "tests.touch_file" and task.enabled
    assert (task.crontab.minute, task.crontab.hour) == ("30", "2")
    assert str(task.crontab.timezone) == "Europe/Berlin"
    assert body["params"] == {"path": "/tmp/nightly", "text": "done"}
    assert body["overlap_policy"] == schedule.overlap_policy and body["paused"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "not a cron"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"params": {"path": 5, "bogus": 1}}, "params"),
        ({"job": "tests.nope"}, "job"),
        ({"job": "scheduler.alerts.deliver"}, "job"),
        ({"jitter": -5}, "jitter"),
        ({"overlap_policy": "sometimes"}, "overlap_policy"),
    ],
)
def test_invalid_schedules_are_422_by_field_and_save_nothing(editor, changes, field):
    response = editor.post("/api/schedules", {**NEW, **changes})
    assert response.status_code == 422, response.content
    assert field in error_of(response)["fields"], error_of(response)
    assert (
        not Schedule.objects.exists()
        and not PeriodicTask.objects.filter(task="tests.touch_file").exists()
    )


def test_a_taken_name_is_422(editor):
    created(editor)
    response = editor.post("/api/schedules", NEW)
    assert response.status_code == 422 and "name" in error_of(response)["fields"]
    assert Schedule.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_editors_create_and_change(role, editor, request):
    caller = request.getfixturevalue(role)
    assert caller.post("/api/schedules", NEW).status_code == 403
    body = created(editor)
    assert caller.patch(f"/api/schedules/{body['id']}", {"cron": "0 * * * *"}).status_code == 403
    assert caller.get(f"/api/schedules/{body['id']}").status_code == 200
    assert Schedule.objects.get(pk=body["id"]).cron == "30 2 * * *"


def test_patch_changes_only_what_is_given_and_keeps_the_cron_entry_in_step(editor):
    body = created(editor, description="before")
    response = editor.patch(f"/api/schedules/{body['id']}", {"cron": "*/5 * * * *"})
    assert response.status_code == 200, response.content
    schedule = Schedule.objects.get(pk=body["id"])
    assert schedule.cron == "*/5 * * * *" and schedule.description == "before"
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab.minute == "*/5"


def test_an_invalid_patch_changes_nothing(editor):
    body = created(editor)
    response = editor.patch(
        f"/api/schedules/{body['id']}", {"cron": "99 * * * *", "description": "new"}
    )
    assert response.status_code == 422 and "cron" in error_of(response)["fields"]
    schedule = Schedule.objects.get(pk=body["id"])
    assert schedule.cron == "30 2 * * *" and schedule.description == ""
    null = editor.patch(f"/api/schedules/{body['id']}", {"cron": None})
    assert null.status_code == 422


def test_a_secret_left_out_of_a_patch_keeps_its_stored_value(editor):
    body = created(
        editor,
        name="fetch",
        job="builtin.http_request",
        params={"url": "https://example.org/", "bearer_token": "keep-me-secret"},
    )
    assert body["params"]["bearer_token"] != "keep-me-secret"
    response = editor.patch(
        f"/api/schedules/{body['id']}", {"params": {"url": "https://example.org/other"}}
    )
    assert response.status_code == 200, response.content
    assert "keep-me-secret" not in response.content.decode()
    stored = Schedule.objects.get(pk=body["id"]).params
    assert stored["url"] == "https://example.org/other" and is_sealed(stored["bearer_token"])


def test_pause_resume_and_run_now(editor, operator, viewer):
    body = created(editor)
    url = f"/api/schedules/{body['id']}"
    assert viewer.post(f"{url}/pause", {"note": "x"}).status_code == 403
    paused = operator.post(f"{url}/pause", {"note": "maintenance window"})
    assert paused.status_code == 200
    assert paused.json()["paused"]["note"] == "maintenance window"
    assert paused.json()["paused"]["by"] == "operator"
    schedule = Schedule.objects.get(pk=body["id"])
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    resumed = operator.post(f"{url}/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is None
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    run = operator.post(f"{url}/run-now")
    assert run.status_code == 202, run.content
    assert run.json()["trigger"] == "manual" and run.json()["schedule"]["id"] == body["id"]
    assert run["Location"].endswith(f"/api/runs/{run.json()['id']}")
    assert JobRun.objects.filter(schedule_id=body["id"]).count() == 1
    assert viewer.post(f"{url}/run-now").status_code == 403


def test_unknown_schedules_are_404(operator):
    for response in (
        operator.get("/api/schedules/99999"),
        operator.post("/api/schedules/99999/pause", {}),
        operator.post("/api/schedules/99999/run-now"),
    ):
        assert response.status_code == 404
        assert error_of(response)["code"] == "unknown_schedule"


def test_schedules_are_listed_a_page_at_a_time(editor, viewer):
    ids = [created(editor, name=f"s{i}")["id"] for i in range(5)]
    editor.post(f"/api/schedules/{ids[0]}/pause", {})
    seen, url = [], "/api/schedules?limit=2"
    while url:
        body = viewer.client.get(url, **viewer._headers(None)).json()
        seen += [item["id"] for item in body["items"]]
        url = body["next"]
    assert seen == sorted(ids, reverse=True)
    assert [s["id"] for s in viewer.get("/api/schedules", job="tests.nope").json()["items"]] == []
