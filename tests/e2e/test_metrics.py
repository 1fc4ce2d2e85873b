"""Prometheus metrics scraped for real: a worker and a beat with an exporter port (and the
multiprocess directory the worker's pool writes to), and the web app's /metrics."""

from __future__ import annotations

import pytest

from tests.support.metrics import sample, scrape
from tests.support.processes import celery_beat, celery_worker, wait_for
from tests.support.runs import over, run_now
from tests.support.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_worker_and_a_beat_serve_their_metrics(platform, client_app, tmp_path):
    worker_port, beat_port = free_port(), free_port()
    multiproc = tmp_path / "prom-worker"
    multiproc.mkdir()
    worker_env = {
        **platform.env,
        "METRICS_PORT": str(worker_port),
        "METRICS_ADDR": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    beat_env = {**platform.env, "METRICS_PORT": str(beat_port), "METRICS_ADDR": "127.0.0.1"}
    marker = tmp_path / "ran.txt"
    with celery_worker(tmp_path, worker_env, queues=platform.queue, concurrency=2):
        first = run_now(client_app, platform.queue, "tests.touch_file", {"path": str(marker)})
        wait_for(lambda: over(first), 30, "the run")
        # Counted in a pool process, served by the main process from the shared directory.
        text = scrape(worker_port) or ""
        labels = {"job": "tests.touch_file"}
        assert sample(text, "jobs_runs_total", status="succeeded", **labels) == 1.0
        assert sample(text, "jobs_run_duration_seconds_count", **labels) == 1.0
        assert sample(text, "jobs_runs_total", status="failed", **labels) is None
        # The database's gauges are the web app's alone.
        assert "jobs_incidents_open" not in text
    with celery_beat(tmp_path, beat_env):
        wait_for(
            lambda: (sample(scrape(beat_port) or "", "jobs_beat_claim_seconds_count") or 0) >= 2,
            30,
            "beat's claims",
        )
