"""The catalog and run endpoints over HTTP: tokens, permissions, the trigger's answers (202,
422, 409, 404, 429, 413), reading, cancelling and listing runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler.runs.models import JobRun, RunRequest
from scheduler.web.models import ApiToken, RateWindow
from tests.api.conftest import caller_for, error_of

pytestmark = pytest.mark.django_db
Status = JobRun.Status
TOUCH = "/api/jobs/tests.touch_file/runs"


# --- authentication -----------------------------------------------------------------------
def test_no_token_is_401_with_a_bearer_challenge(client):
    response = client.get("/api/jobs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["code"] == "not_authenticated"


@pytest.mark.parametrize("header", ["Bearer jobs_wrong", "Bearer ", "Basic dXNlcjpwYXNz", "jobs_x"])
def test_a_wrong_token_is_401(client, operator, header):
    assert client.get("/api/jobs", HTTP_AUTHORIZATION=header).status_code == 401


def test_only_the_hash_of_a_token_is_stored(operator):
    row = ApiToken.objects.get(user=operator.user)
    assert operator.token.startswith("jobs_") and len(operator.token) > 40
    assert operator.token not in (row.key_hash, row.prefix)
    assert row.prefix == operator.token[:12]


def test_a_revoked_or_expired_token_or_inactive_user_is_refused(operator):
    assert operator.get("/api/jobs").status_code == 200
    row = ApiToken.objects.get(user=operator.user)
    row.revoked_at = timezone.now()
    row.save()
    assert operator.get("/api/jobs").status_code == 401
    row.revoked_at, row.expires_at = None, timezone.now() - timedelta(seconds=1)
    row.save()
    assert operator.get("/api/jobs").status_code == 401
    row.expires_at = None
    row.save()
    operator.user.is_active = False
    operator.user.save()
    assert operator.get("/api/jobs").status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(operator):
    operator.get("/api/jobs")
    first = ApiToken.objects.get(user=operator.user).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        operator.get("/api/jobs")
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]
    assert ApiToken.objects.get(user=operator.user).last_used_at == first


def test_a_session_cookie_is_no_api_credential(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/api/jobs").status_code == 401


# --- catalog ------------------------------------------------------------------------------
def test_jobs_are_listed_without_the_platforms_own_tasks(viewer):
    names = [job["name"] for job in viewer.get("/api/jobs").json()["items"]]
    assert "tests.touch_file" in names and "builtin.http_request" in names
    assert not [n for n in names if n.startswith(("scheduler.", "celery."))]


def test_a_job_is_described_with_its_parameter_schema(viewer):
    body = viewer.get("/api/jobs/builtin.http_request").json()
    assert body["params_schema"]["properties"]["bearer_token"]["secret"] is True
    assert body["defaults"]["method"] == "GET"
    assert body["retry"]["max_attempts"] >= 1 and body["cancellable"] is False
    assert viewer.get("/api/jobs/builtin.download_files").json()["cancellable"] is True


def test_an_unknown_job_is_404(viewer):
    for name in ("tests.nope", "scheduler.alerts.deliver"):
        response = viewer.get(f"/api/jobs/{name}")
        assert response.status_code == 404 and error_of(response)["code"] == "unknown_job"


def test_a_user_without_catalog_permission_is_403(db):
    nobody = caller_for("nobody")
    response = nobody.get("/api/jobs")
    assert response.status_code == 403 and error_of(response)["code"] == "permission_denied"


# --- trigger ------------------------------------------------------------------------------
def test_trigger_answers_202_with_the_run_and_a_location(operator, tmp_path):
    response = operator.post(TOUCH, {"params": {"path": str(tmp_path / "m")}})
    assert response.status_code == 202, response.content
    body = response.json()
    run = JobRun.objects.get(pk=body["id"])
    assert response["Location"] == f"http://testserver/api/runs/{run.pk}"
    assert body["status"] == Status.QUEUED and body["finished"] is False
    assert body["trigger"] == "api" and body["job"] == "tests.touch_file"
    assert body["attempts"] == [
        {"id": run.pk, "attempt": 1, "status": "queued", "started_at": None,
         "finished_at": None, "error_type": ""}
    ]  # fmt: skip
    assert operator.get(response["Location"]).json()["id"] == run.pk


def test_invalid_parameters_are_422_with_field_errors_and_queue_nothing(operator):
    response = operator.post(TOUCH, {"params": {"text": 3, "other": 1}})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_parameters"
    assert set(error["fields"]) == {"path", "text", "other"}
    assert not JobRun.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"params": "nope"}, {"params": [1]}, {"callback_url": 5}, "not an object"],
)
def test_a_malformed_body_is_422_and_queues_nothing(operator, body):
    response = operator.post(TOUCH, body)
    assert response.status_code == 422
    assert error_of(response)["code"] in {"invalid_request", "invalid_parameters"}
    assert not JobRun.objects.exists()


def test_broken_json_is_an_error_in_the_one_shape(operator):
    response = operator.client.post(
        TOUCH, "{not json", content_type="application/json", **operator._headers(None)
    )
    assert response.status_code in (400, 422)
    error_of(response)
    assert not JobRun.objects.exists()


def test_unknown_job_is_404_and_queues_nothing(operator):
    response = operator.post("/api/jobs/tests.nope/runs", {"params": {}})
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_job"
    assert not JobRun.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_operators_may_trigger(role):
    caller = caller_for(role)
    response = caller.post(TOUCH, {"params": {"path": "/tmp/x"}})
    assert response.status_code == 403
    assert "trigger_job" in error_of(response)["message"]
    assert not JobRun.objects.exists()


def test_an_idempotency_key_returns_the_first_run(operator):
    headers = {"Idempotency-Key": "checkout-42"}
    first = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}, headers)
    again = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}, headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert JobRun.objects.count() == 1


def test_an_idempotency_key_reused_with_other_parameters_is_409(operator):
    headers = {"Idempotency-Key": "checkout-43"}
    first = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}, headers)
    other = operator.post(TOUCH, {"params": {"path": "/tmp/b"}}, headers)
    assert other.status_code == 409
    error = error_of(other)
    assert error["code"] == "idempotency_conflict" and error["run_id"] == first.json()["id"]
    assert JobRun.objects.count() == 1


def test_a_callback_url_is_kept_with_the_request_and_a_bad_one_is_422(operator, settings):
    settings.CALLBACK_SIGNING_SECRET = "whsec"
    good = operator.post(
        TOUCH, {"params": {"path": "/tmp/a"}, "callback_url": "https://example.org/done"}
    )
    assert RunRequest.objects.get(run_id=good.json()["id"]).callback_url == (
        "https://example.org/done"
    )
    bad = operator.post(TOUCH, {"params": {"path": "/tmp/a"}, "callback_url": "file:///x"})
    assert bad.status_code == 422 and "callback_url" in error_of(bad)["fields"]
    assert JobRun.objects.count() == 1


def test_trigger_is_rate_limited_per_user(operator, settings):
    settings.API_TRIGGER_RATE = "2/min"
    codes = [operator.post(TOUCH, {"params": {"path": "/tmp/a"}}).status_code for _ in range(3)]
    assert codes[:2] == [202, 202]
    assert codes[2] == 429
    limited = operator.post(TOUCH, {"params": {"path": "/tmp/a"}})
    assert error_of(limited)["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert JobRun.objects.count() == 2
    # Another user has a budget of their own; reads are never limited.
    assert caller_for("operator", "op2").post(TOUCH, {"params": {"path": "/x"}}).status_code == 202
    assert operator.get("/api/runs").status_code == 200
    assert RateWindow.objects.filter(key__startswith="trigger:user:").count() == 2


def test_an_oversize_body_is_413_and_queues_nothing(operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = operator.post(TOUCH, {"params": {"path": "/tmp/a", "text": "x" * 5000}})
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert not JobRun.objects.exists()


# --- reading, cancelling ------------------------------------------------------------------
def test_a_run_shows_progress_result_error_and_logs_on_request(operator, viewer):
    run_id = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}).json()["id"]
    JobRun.objects.filter(pk=run_id).update(
        status=Status.FAILED,
        progress={"done": 3, "total": 12, "message": "file 3", "at": "2026-12-03T10:00:00Z"},
        result="",
        error_type="OSError",
        error_message="disk full",
        traceback="Traceback ...",
        logs="line one\nline two",
        finished_at=timezone.now(),
    )
    body = viewer.get(f"/api/runs/{run_id}").json()
    assert body["progress"]["percent"] == 25.0 and body["progress"]["message"] == "file 3"
    assert body["error"] == {"type": "OSError", "message": "disk full", "traceback": None}
    assert body["logs"] is None and body["finished"] is True
    full = viewer.get(f"/api/runs/{run_id}", logs="true").json()
    assert full["logs"] == "line one\nline two"
    assert full["error"]["traceback"] == "Traceback ..."


def test_a_run_is_read_as_its_latest_attempt(operator):
    run_id = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}).json()["id"]
    first = JobRun.objects.get(pk=run_id)
    JobRun.objects.filter(pk=run_id).update(status=Status.RETRYING)
    later = JobRun.objects.create(
        task_name=first.task_name,
        scheduled_for=first.scheduled_for,
        trigger=JobRun.Trigger.RETRY,
        attempt=2,
        occurrence=first,
        status=Status.SUCCEEDED,
        result="{'ok': True}",
    )
    for any_id in (run_id, later.pk):
        body = operator.get(f"/api/runs/{any_id}").json()
        assert body["id"] == run_id and body["attempt_id"] == later.pk
        assert body["status"] == "succeeded" and body["finished"] is True
        assert [a["status"] for a in body["attempts"]] == ["retrying", "succeeded"]


def test_secret_parameters_are_masked_in_a_run(operator):
    response = operator.post(
        "/api/jobs/builtin.http_request/runs",
        {"params": {"url": "https://example.org/", "bearer_token": "tok-very-secret"}},
    )
    assert response.status_code == 202
    assert "tok-very-secret" not in response.content.decode()
    read = operator.get(f"/api/runs/{response.json()['id']}", logs="true")
    assert "tok-very-secret" not in read.content.decode()


def test_an_unknown_run_is_404(viewer):
    response = viewer.get("/api/runs/999999")
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_run"


def test_cancel_then_cancel_again_is_409(operator, viewer):
    run_id = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}).json()["id"]
    assert viewer.post(f"/api/runs/{run_id}/cancel").status_code == 403
    cancelled = operator.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = operator.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409 and error_of(again)["code"] == "not_cancellable"
    assert JobRun.objects.get(pk=run_id).status == Status.CANCELLED


def test_a_finished_run_cannot_be_cancelled(operator):
    run_id = operator.post(TOUCH, {"params": {"path": "/tmp/a"}}).json()["id"]
    JobRun.objects.filter(pk=run_id).update(status=Status.SUCCEEDED)
    response = operator.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 409
    assert JobRun.objects.get(pk=run_id).status == Status.SUCCEEDED


# --- listing ------------------------------------------------------------------------------
def make_runs(count: int, **fields) -> list[JobRun]:
    now = timezone.now()
    return JobRun.objects.bulk_create(
        JobRun(
            task_name=fields.get("task_name", "tests.touch_file"),
            scheduled_for=now - timedelta(minutes=i),
            status=fields.get("status", Status.SUCCEEDED),
            trigger=fields.get("trigger", JobRun.Trigger.BEAT),
        )
        for i in range(count)
    )


def test_runs_are_paged_by_cursor_newest_first_without_a_count(viewer):
    make_runs(7)
    seen: list[int] = []
    url, pages = "/api/runs?limit=3", 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            body = viewer.client.get(url, **viewer._headers(None)).json()
        assert not [q for q in queries if "COUNT(" in q["sql"].upper()]
        seen += [item["id"] for item in body["items"]]
        url, pages = body["next"], pages + 1
    assert pages == 3 and len(seen) == 7 == len(set(seen))
    times = list(JobRun.objects.order_by("-scheduled_for", "-id").values_list("id", flat=True))
    assert seen == times


def test_runs_are_filtered_like_the_history(viewer):
    make_runs(3)
    make_runs(2, status=Status.FAILED)
    make_runs(1, task_name="builtin.http_request", trigger=JobRun.Trigger.API)
    assert len(viewer.get("/api/runs", status="failed").json()["items"]) == 2
    assert len(viewer.get("/api/runs", job="builtin.http_request").json()["items"]) == 1
    assert len(viewer.get("/api/runs", trigger="api").json()["items"]) == 1
    since = (timezone.now() - timedelta(seconds=30)).isoformat()
    assert len(viewer.get("/api/runs", since=since).json()["items"]) == 3
    items = viewer.get("/api/runs", status="failed", limit=1).json()
    assert len(items["items"]) == 1 and "status=failed" in items["next"]


@pytest.mark.parametrize(
    "query", [{"status": "bogus"}, {"limit": 0}, {"limit": 1000}, {"cursor": "!!"}, {"since": "x"}]
)
def test_bad_list_filters_are_422(viewer, query):
    response = viewer.get("/api/runs", **query)
    assert response.status_code == 422
    error_of(response)
