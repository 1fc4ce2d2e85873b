"""Input the contract test found answered with a server error or not as documented: each is
now a clear JSON error with the documented status, and changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobs_catalog.models import JobDefinition
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth(admin_caller) -> dict[str, str]:
    """A superuser's token, for requests whose body is sent as written."""
    return {"HTTP_AUTHORIZATION": f"Bearer {admin_caller.token}"}


@pytest.fixture
def schedule(tmp_path) -> Schedule:
    return save_schedule(
        Schedule(
            name="kept",
            job=JobDefinition.objects.get(name="tests.touch_file"),
            cron="0 0 1 1 *",
            params={"path": str(tmp_path / "marker")},
        )
    )


def post_json(client, url: str, body: str, auth: dict, method: str = "post"):
    return getattr(client, method)(url, body, content_type="application/json", **auth)


def fields(response) -> dict[str, list[str]]:
    return error_of(response)["fields"]


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ('{"params": {"path": "/tmp/a\\u0000b"}}', "params.path", "NUL"),
        (
            '{"params": {"path": "/tmp/a"}, "callback_url": "http://x\\u0000/"}',
            "callback_url",
            "NUL",
        ),
        ('{"params": {"pa\\u0000th": "/tmp/a"}}', "params", "NUL"),
        ('{"params": {"path": "/tmp/a", "text": NaN}}', "params.text", "finite"),
    ],
)
def test_text_with_nul_or_a_number_json_has_not_is_refused_and_nothing_queued(
    client, auth, body, field, problem
):
    response = post_json(client, "/api/jobs/tests.touch_file/runs", body, auth)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert problem in " ".join(fields(response)[field])
    assert not JobRun.objects.exists()


def test_nul_in_a_path_or_query_value_is_refused(client, auth):
    described = client.get("/api/jobs/tests.touch%00file", **auth)
    listed = client.get("/api/runs", {"job": "a\x00b"}, **auth)
    assert described.status_code == listed.status_code == 422
    assert list(fields(described)) == ["name"] and list(fields(listed)) == ["job"]


def test_a_schedule_named_with_nul_is_not_created_nor_renamed(client, auth, schedule):
    body = '{"name": "a\\u0000b", "job": "tests.touch_file", "cron": "* * * * *"}'
    created = post_json(client, "/api/schedules", body, auth)
    renamed = post_json(client, f"/api/schedules/{schedule.pk}", body, auth, method="patch")
    assert created.status_code == renamed.status_code == 422
    assert "NUL" in fields(created)["name"][0]
    assert list(Schedule.objects.values_list("name", flat=True)) == ["kept"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("[1, 2]", 422, "not an array"),
        ("7", 422, "not a number"),
        ('"run it"', 422, "not a string"),
        ("{nope", 400, "Expecting"),
    ],
)
def test_a_body_that_is_no_json_object_is_refused_and_queues_nothing(
    client, auth, body, status, says
):
    """An array was read as an object with every field left out: a run with no parameters."""
    response = post_json(client, "/api/jobs/tests.sleep/runs", body, auth)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == {400: "malformed_request", 422: "invalid_request"}[status]
    assert says in json.dumps(error)
    assert not JobRun.objects.exists()


def test_a_null_where_the_document_allows_none_is_a_422_and_changes_nothing(client, auth, schedule):
    response = post_json(
        client, f"/api/schedules/{schedule.pk}", '{"name": null, "cron": null}', auth, "patch"
    )
    assert response.status_code == 422
    assert set(fields(response)) == {"name", "cron"}
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron) == ("kept", "0 0 1 1 *")


def test_pause_and_trigger_need_no_body(client, auth, schedule):
    # generic(): the test client's post() would send an empty multipart form, not nothing.
    paused = client.generic("POST", f"/api/schedules/{schedule.pk}/pause", **auth)
    assert paused.status_code == 200, paused.content
    assert paused.json()["paused"]["note"] == ""
    triggered = client.generic("POST", "/api/jobs/tests.sleep/runs", **auth)
    assert triggered.status_code == 202, triggered.content
    assert JobRun.objects.get().params == {"seconds": 0.1}


def test_times_with_any_offset_filter_the_runs(client, auth):
    """ISO 8601 allows offsets up to ±23:59, PostgreSQL only ±15:59: converted to UTC."""
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    JobRun.objects.create(task_name="tests.sleep", scheduled_for=at)
    just_before = (at - timedelta(seconds=1)).astimezone(timezone(-timedelta(hours=19, minutes=2)))
    found = client.get("/api/runs", {"since": just_before.isoformat()}, **auth)
    after = client.get("/api/runs", {"since": "2026-03-01T23:00:01+11:00"}, **auth)
    assert found.status_code == after.status_code == 200, found.content
    assert len(found.json()["items"]) == 1 and after.json()["items"] == []


@pytest.fixture
def upload_root(settings, tmp_path):
    root = tmp_path / "uploads"
    root.mkdir()
    settings.JOBS_FILE_ROOTS = [str(tmp_path)]
    settings.API_UPLOAD_ROOT = str(root)
    return root


def leftovers(root) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def test_a_malformed_multipart_body_is_a_422_and_leaves_no_file(client, auth, upload_root):
    no_boundary = client.generic(
        "POST",
        "/api/uploads/builtin.bulk_rename",
        b"--x\r\n",
        content_type="multipart/form-data",
        **auth,
    )
    assert no_boundary.status_code == 422
    assert no_boundary.json()["error"]["code"] == "invalid_upload"
    boundary = "b0undary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
        "\r\nsome text\r\n"
    )
    twice = (part * 2 + f"--{boundary}--\r\n").encode()
    same_name = client.generic(
        "POST",
        "/api/uploads/builtin.bulk_rename",
        twice,
        content_type=f"multipart/form-data; boundary={boundary}",
        **auth,
    )
    assert same_name.status_code == 422, same_name.content
    assert "two files are named 'a.txt'" in json.dumps(same_name.json())
    assert leftovers(upload_root) == [] and not JobRun.objects.exists()
