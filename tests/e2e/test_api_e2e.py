"""The HTTP API end to end, as an application uses it: over HTTP to gunicorn, with a real
``celery worker`` running what it queues. A trigger answers 202 with a Location that is polled
until the run has finished; the same Idempotency-Key again answers with that run, and the job
ran once. A schedule made and run now through the API runs too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from scheduler.runs.models import JobRun, RunRequest
from scheduler.web.models import ApiToken
from tests.browser.stack import Site, collect_static, running_site, site_env
from tests.support.http import Response, fetch, send
from tests.support.processes import celery_worker, wait_for
from tests.support.runs import lines

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: Seconds a run may take from the trigger to its end (a worker on a small shared machine).
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("static")
    collect_static(root, dict(os.environ))
    return root


@pytest.fixture
def stack(platform, static_root) -> Iterator[Site]:
    """gunicorn, and a worker on Celery's default queue (where a trigger of a job that names
    no queue goes) and on the platform's own (where the test's schedule sends)."""
    with running_site(platform, static_root, celery=False) as site:
        env = site_env(platform, static_root)
        queues = f"celery,{platform.queue}"
        with celery_worker(platform.tmp_path, env, queues=queues) as worker:
            site.processes["worker"] = worker  # its log in a failure message
            yield site


@pytest.fixture
def auth() -> dict[str, str]:
    user = get_user_model().objects.create_superuser("app", "app@example.com", "pw-app-12345")
    _row, token = ApiToken.issue(user, "shop backend")
    return {"Authorization": f"Bearer {token}"}


def finished(location: str, auth: dict[str, str]) -> dict[str, Any] | None:
    """The run at ``location`` once nothing more will happen to it, else None."""
    response = fetch(location, auth)
    assert response is not None and response.status == 200, response and response.text
    run = response.json()
    return run if run["finished"] else None


def followed(site: Site, answer: Response, auth: dict[str, str]) -> dict[str, Any]:
    """A 202's run, polled at its Location until it has finished."""
    assert answer.status == 202, answer.text
    location = answer.headers["Location"]
    assert location == f"{site.base_url}/api/runs/{answer.json()['id']}"
    try:
        return wait_for(lambda: finished(location, auth), RUN_TIMEOUT, "the run to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{site.logs()}") from None


def test_a_trigger_runs_once_and_its_idempotency_key_answers_with_that_run(stack, auth, tmp_path):
    marker = tmp_path / "marker.txt"
    url = f"{stack.base_url}/api/jobs/tests.touch_file/runs"
    body = {"params": {"path": str(marker), "text": "ordered"}}
    headers = {**auth, "Idempotency-Key": "order-4711"}

    first = send(url, body, headers)
    run = followed(stack, first, auth)
    assert run["status"] == "succeeded", run
    assert (run["id"], run["job"], run["trigger"]) == (
        first.json()["id"],
        "tests.touch_file",
        "api",
    )
    assert run["result"] and str(marker) in run["result"]
    [line] = lines(marker)
    assert line.startswith("ordered ")

    again = send(url, body, headers)
    assert again.status == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.json()["id"], again.json()["status"]) == (run["id"], "succeeded")
    assert again.headers["Location"] == first.headers["Location"]
    # No second run was committed, so none can run: the job wrote its one line only.
    assert JobRun.objects.filter(task_name="tests.touch_file").count() == 1
    assert RunRequest.objects.count() == 1
    assert lines(marker) == [line]

    with_logs = fetch(f"{first.headers['Location']}?logs=true", auth)
    assert with_logs is not None and f"touching {marker}" in with_logs.json()["logs"]


def test_a_schedule_made_and_run_now_through_the_api_runs(stack, auth, platform, tmp_path):
    marker = tmp_path / "scheduled.txt"
    created = send(
        f"{stack.base_url}/api/schedules",
        {
            "name": "nightly export",
            "job": "tests.touch_file",
            "cron": "0 3 * * *",
            "params": {"path": str(marker), "text": "scheduled"},
            "queue": platform.queue,
        },
        auth,
    )
    assert created.status == 201, created.text
    schedule = created.json()
    assert created.headers["Location"] == f"{stack.base_url}/api/schedules/{schedule['id']}"

    run = followed(
        stack, send(f"{stack.base_url}/api/schedules/{schedule['id']}/run-now", None, auth), auth
    )
    assert run["status"] == "succeeded", run
    assert run["schedule"] == {"id": schedule["id"], "name": "nightly export"}
    assert run["queue"] == platform.queue
    assert [line.split()[0] for line in lines(marker)] == ["scheduled"]
