"""Celery router: a catalog job goes to the queue it declares (a per-call ``queue`` wins)."""

from __future__ import annotations

from typing import Any

from jobs_catalog.registry import registry


def route_job(name: str, args: Any, kwargs: Any, options: dict, task: Any = None, **kw: Any):
    job = registry.find(name)
    if job is not None and job.queue:
        return {"queue": job.queue}
    return None
