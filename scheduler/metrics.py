"""The platform's Prometheus metrics: defined once here, counted where things happen (the
worker's run middleware, beat's claim and outbox, alerting's deliveries, callbacks and
watchdog), and exposed by ``scheduler.web.metrics`` (the web app's ``/metrics`` and the
exporter port of worker and beat).

With several processes (gunicorn workers, the worker's prefork pool) each writes its own
files under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape sums them (prometheus-client's
multiprocess mode); without it each process counts for itself.

Counting costs a lock and an add: nothing here reads the database or blocks.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: Seconds: jobs run from milliseconds to an hour.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Seconds: beat's own steps, from a millisecond to a slow batch.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Seconds from an occurrence's scheduled time to its publishing (jitter included).
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)

RUNS = Counter(
    "jobs_runs",
    "Attempts ended, by job and status (succeeded, failed, retrying, timed_out, lost, ...).",
    ["job", "status"],
)
RUN_DURATION = Histogram(
    "jobs_run_duration_seconds",
    "How long an attempt ran, by job (from its start to its end, on the worker).",
    ["job"],
    buckets=DURATION_BUCKETS,
)
RETRIES = Counter("jobs_run_retries", "Retry attempts published, by job.", ["job"])
DISPATCH_LAG = Histogram(
    "jobs_dispatch_lag_seconds",
    "Beat: publishing time minus scheduled time of each occurrence it publishes.",
    buckets=LAG_BUCKETS,
)
OCCURRENCES_COMMITTED = Counter(
    "jobs_occurrences_committed", "Runs committed to be published (the outbox's rows)."
)
OCCURRENCES_PUBLISHED = Counter(
    "jobs_occurrences_published", "Runs the outbox published and marked queued."
)
BEAT_CLAIM = Histogram(
    "jobs_beat_claim_seconds",
    "Beat: one claim of due entries, their occurrences committed (one transaction).",
    buckets=STEP_BUCKETS,
)
BEAT_PUBLISH = Histogram(
    "jobs_beat_publish_seconds",
    "The outbox: handing a batch of messages to the publisher and marking what was sent.",
    buckets=STEP_BUCKETS,
)
ALERT_DELIVERIES = Counter(
    "jobs_alert_deliveries",
    "Alert deliveries attempted, by channel kind and outcome (sent, failed, retrying).",
    ["kind", "outcome"],
)
CALLBACK_DELIVERIES = Counter(
    "jobs_callback_deliveries",
    "Completion callback attempts, by target (url, channel) and outcome (sent, failed, retry).",
    ["target", "outcome"],
)
WATCHDOG_PASS = Histogram(
    "jobs_watchdog_pass_seconds", "One alerting watchdog pass.", buckets=STEP_BUCKETS
)


def run_ended(job: str, status: str, duration: float | None = None) -> None:
    """An attempt of ``job`` ended with ``status`` after ``duration`` seconds of running."""
    RUNS.labels(job, status).inc()
    if duration is not None:
        RUN_DURATION.labels(job).observe(duration)
