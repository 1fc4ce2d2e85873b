"""Prometheus exposition of ``scheduler.metrics``: ``/metrics`` on the web app (guarded by
``METRICS_TOKEN`` or ``METRICS_ALLOW``; off when neither is set) and an exporter port in the
worker's and beat's main process (``METRICS_PORT``).

With ``PROMETHEUS_MULTIPROC_DIR`` set, a scrape sums what every process of the service wrote
there (gunicorn's workers, the worker's pool processes). The web app's scrape adds three
gauges read from the database at scrape time, each a count on a partial index: runs pending
publication, runs running, open incidents. Worker and beat leave them out, so a sum over the
targets counts them once.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from scheduler import metrics  # noqa: F401  (the definitions, registered on import)
from scheduler.alerts.models import Incident
from scheduler.runs.models import JobRun

logger = logging.getLogger(__name__)


def process_registry() -> CollectorRegistry:
    """What this process exposes: every process's files in multiprocess mode, else its own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return REGISTRY


class DatabaseGauges(Collector):
    """Counts read at scrape time (a bounded count on a partial index each)."""

    def describe(self) -> list[Any]:
        return []  # nothing read when registered: only at a scrape

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = JobRun.objects.filter(status=JobRun.Status.PENDING).count()
        running = JobRun.objects.filter(status=JobRun.Status.RUNNING).count()
        incidents = Incident.objects.filter(resolved_at__isnull=True).count()
        yield GaugeMetricFamily(
            "jobs_occurrences_pending", "Runs committed and not yet published.", value=pending
        )
        yield GaugeMetricFamily("jobs_runs_running", "Runs marked running now.", value=running)
        yield GaugeMetricFamily("jobs_incidents_open", "Alert incidents open now.", value=incidents)


def scrape() -> bytes:
    """The web app's exposition: the processes' metrics and the database's gauges."""
    registry = CollectorRegistry()
    registry.register(_Forward(process_registry()))
    registry.register(DatabaseGauges())
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def allowed(request: HttpRequest) -> bool:
    """A scrape carries ``Authorization: Bearer <METRICS_TOKEN>``, or comes from an address in
    ``METRICS_ALLOW``; with neither set the endpoint is off."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    networks = settings.METRICS_ALLOW
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(n, strict=False) for n in networks)
    return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOW):
        return HttpResponse(status=404)
    if not allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)


_serving = False


def start_exporter(sender: Any = None, **kwargs: Any) -> None:
    """Serve this process's metrics on ``METRICS_PORT`` (worker and beat; off when 0), once:
    beat calls it at each turn of its loop (its apps are loaded only as the loop starts)."""
    global _serving
    port = settings.METRICS_PORT
    if not port or _serving:
        return
    _serving = True
    start_http_server(port, addr=settings.METRICS_ADDR, registry=process_registry())
    logger.info("metrics: serving on %s:%d", settings.METRICS_ADDR, port)
