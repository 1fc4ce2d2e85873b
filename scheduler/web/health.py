"""Probes for load balancers and orchestrators: ``/healthz`` (the process answers) and
``/readyz`` (it can do its work: the database answers, every migration is applied, the broker
accepts a connection); and Prometheus's scrape, ``/metrics`` (``scheduler.web.metrics``).

Answered by a middleware placed first, before host validation, sessions and authentication:
a probe comes from an orchestrator that knows no allowed host name (a pod's IP) and has no
login. The answers are JSON and hold nothing secret: which check failed and the exception's
class, never a URL, host or message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import current_app
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from scheduler.web.metrics import metrics_view

#: Seconds the broker check waits for a connection.
BROKER_TIMEOUT = 2.0

Check = Callable[[], None]
_migrated = False  # once every migration is applied, it stays so for this process


def check_database() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")


def check_migrations() -> None:
    global _migrated
    if _migrated:
        return
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied")
    _migrated = True


def check_broker() -> None:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)


READINESS: dict[str, Check] = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
}


def readiness(checks: dict[str, Check] = READINESS) -> tuple[bool, dict[str, Any]]:
    """Run every check (each after the others, a failing one does not stop the rest)."""
    results: dict[str, Any] = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the class says which
            results[name] = {"ok": False, "error": type(exc).__name__}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return all(r["ok"] for r in results.values()), results


def healthz() -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz() -> JsonResponse:
    ready, checks = readiness()
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


PROBES: dict[str, Callable[[], JsonResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    """Answers the probes' paths (GET or HEAD) before any other middleware runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if path == "/metrics":  # a scraper knows no host name either
            response = metrics_view(request)
            return response if response.status_code != 404 else self.get_response(request)
        probe = PROBES.get(path)
        if probe is None:
            return self.get_response(request)
        response = probe()
        response["Cache-Control"] = "no-store"
        return response
