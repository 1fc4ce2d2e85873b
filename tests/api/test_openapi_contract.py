"""The OpenAPI document is the API's contract, checked against the running app: gunicorn (as
deployed) on the test database, read by schemathesis from ``/api/openapi.json``. For every
operation it sends generated requests, valid and invalid (the coverage phase's boundary cases
and a bounded, derandomized fuzzing phase), and checks each answer: no server error, a status
code, content type, headers and body the document declares.

Half the generated ids and job names are those of rows the test made, so the answers that
describe real runs, schedules and jobs are checked too, not only the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.utils import timezone
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs_catalog.models import JobDefinition
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from scheduler.web.models import ApiToken
from tests.browser.stack import Site, collect_static, running_site
from tests.support.platform import new_platform

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Fuzzed requests per operation (the coverage phase adds its own boundary cases): enough to
#: find what the document gets wrong, few enough for the whole test to take well under 90 s.
MAX_EXAMPLES = 30
#: Fixed, so a failure is found again by the next run (and no run finds one by luck).
SEED = 20261203
#: gunicorn's own answers to requests it refuses before the app sees them (a request line or
#: header over its limits): a property of the web server in front, not of the API.
GUNICORN_REFUSALS = ("Request Line is too large", "Request Header Fields Too Large")
Status = JobRun.Status


def _runs(schedule: Schedule) -> list[JobRun]:
    """Runs in every shape the API shows: finished with a result and progress, failed and
    retried (two attempts), and one still pending (cancellable)."""
    now = timezone.now()
    common = {"task_name": "tests.touch_file", "queue": "api-contract", "max_attempts": 2}
    done = JobRun.objects.create(
        **common,
        schedule=schedule,
        scheduled_for=now - timedelta(minutes=3),
        status=Status.SUCCEEDED,
        params={"path": "/tmp/x", "text": "done"},
        started_at=now - timedelta(minutes=3),
        finished_at=now - timedelta(minutes=2),
        duration=60.0,
        result="{'path': '/tmp/x'}",
        logs="INFO touching /tmp/x\n",
        progress={"done": 3, "total": 4, "message": "3 of 4", "at": now.isoformat()},
    )
    failed = JobRun.objects.create(
        **common,
        scheduled_for=now - timedelta(minutes=1),
        trigger=JobRun.Trigger.API,
        status=Status.FAILED,
        error_type="ConnectionError",
        error_message="refused",
        traceback="Traceback (most recent call last): ...",
    )
    retried = JobRun.objects.create(
        **common,
        scheduled_for=now - timedelta(minutes=1),
        trigger=JobRun.Trigger.API,
        occurrence=failed,
        attempt=2,
        status=Status.RUNNING,
        started_at=now,
        progress={"done": 7, "total": None, "message": "", "at": None},
    )
    pending = JobRun.objects.create(**common, scheduled_for=now, status=Status.PENDING)
    return [done, failed, retried, pending]


@pytest.fixture
def api(transactional_db, tmp_path) -> Iterator[tuple[Site, dict]]:
    """gunicorn serving the API, a superuser's token, and the ids of rows to aim at."""
    static_root = tmp_path / "static"
    files = tmp_path / "files"
    (files / "uploads").mkdir(parents=True)
    platform = new_platform(tmp_path, prefix="contract")
    platform.env.update(
        # No worker here: what the API queues stays in a broker of the test's own.
        CELERY_BROKER_URL="filesystem://",
        JOBS_FILE_ROOTS=str(files),
        API_UPLOAD_ROOT=str(files / "uploads"),
        # Every trigger reaches its checks (the limit's 429 has tests of its own).
        API_TRIGGER_RATE="off",
    )
    collect_static(static_root, platform.env)
    user = get_user_model().objects.create_superuser("contract", "c@example.com", "pw-contract-1")
    _row, token = ApiToken.issue(user, "contract")
    schedule = save_schedule(
        Schedule(
            name="contract",
            job=JobDefinition.objects.get(name="tests.touch_file"),
            cron="0 0 1 1 *",
            params={"path": str(files / "marker")},
            queue="api-contract",
        )
    )
    known = {
        "token": token,
        "runs": [run.pk for run in _runs(schedule)],
        "schedules": [schedule.pk],
        "jobs": ["tests.touch_file", "builtin.bulk_rename"],
    }
    with running_site(platform, static_root, celery=False) as site:
        yield site, known


@pytest.fixture
def api_schema(api):
    site, known = api

    def aim(dictionary: str) -> dict:
        return {"dictionary": dictionary, "probability": 0.5}

    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {known['token']}"},
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "dictionaries": {
                "runs": {"values": known["runs"]},
                "schedules": {"values": known["schedules"]},
                "jobs": {"values": known["jobs"]},
            },
            "parameters": {
                "path.run_id": aim("runs"),
                "path.schedule_id": aim("schedules"),
                "path.name": aim("jobs"),
                "path.job": aim("jobs"),
            },
        }
    )
    return schemathesis.openapi.from_url(f"{site.base_url}/api/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def node_id_for_schemathesis(request) -> None:
    """schemathesis 4.32 names each operation's subtest by rewriting the test node's
    ``_nodeid``, which pytest 9.2 no longer has (it keeps ``_id``): give it one to rewrite."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def refused_by_gunicorn(response) -> bool:
    return response.status_code in (400, 431) and any(
        reason in response.text for reason in GUNICORN_REFUSALS
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@schema.parametrize()
def test_every_operation_answers_as_its_openapi_document_says(case, api, node_id_for_schemathesis):
    site, _known = api
    response = case.call()
    if refused_by_gunicorn(response):
        return
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception:
        print(site.logs())
        raise


@pytest.mark.django_db
def test_the_document_names_every_operation_behind_the_token(client):
    """The contract covers the whole API: each operation is in the document, behind the
    bearer token, which is what the test above walks through."""
    document = client.get("/api/openapi.json").json()
    operations = {
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    }
    assert operations == {
        ("GET", "/api/jobs"),
        ("GET", "/api/jobs/{name}"),
        ("POST", "/api/jobs/{name}/runs"),
        ("GET", "/api/runs"),
        ("GET", "/api/runs/{run_id}"),
        ("POST", "/api/runs/{run_id}/cancel"),
        ("GET", "/api/schedules"),
        ("POST", "/api/schedules"),
        ("GET", "/api/schedules/{schedule_id}"),
        ("PATCH", "/api/schedules/{schedule_id}"),
        ("POST", "/api/schedules/{schedule_id}/pause"),
        ("POST", "/api/schedules/{schedule_id}/resume"),
        ("POST", "/api/schedules/{schedule_id}/run-now"),
        ("POST", "/api/uploads/{job}"),
    }
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation.get("security") == [{"TokenAuth": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert document["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
