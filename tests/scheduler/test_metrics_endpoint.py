"""The web app's /metrics: off unless a token or networks are set, refused without them, and
the database's gauges read at the scrape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client

from scheduler.runs.models import JobRun
from tests.support.metrics import sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client()


def test_metrics_are_off_unless_configured(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW = "", []
    assert client.get("/metrics").status_code == 404


def test_a_token_guards_them(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW = "s3cret-token", []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    response = client.get(
        "/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", HTTP_HOST="10.0.0.9:8000"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_networks_guard_them(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW = "", ["10.0.0.0/8", "::1"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.2").status_code == 403


def test_the_scrape_counts_pending_and_running_runs(client, settings):
    settings.METRICS_TOKEN = "t"
    now = datetime.now(UTC)
    for status in ("pending", "pending", "running", "succeeded"):
        JobRun.objects.create(task_name="tests.touch_file", scheduled_for=now, status=status)
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t").content.decode()
    assert sample(text, "jobs_occurrences_pending") == 2.0
    assert sample(text, "jobs_runs_running") == 1.0
    assert sample(text, "jobs_incidents_open") == 0.0
    # The processes' own metrics are there too (this process's, without a multiprocess dir).
    assert "# TYPE jobs_runs_total counter" in text
