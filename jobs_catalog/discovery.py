"""Finds jobs: built-ins, a ``jobs`` module in any installed app, and installed packages
that declare an entry point in the ``jobs_catalog.jobs`` group.

One broken plugin is reported (logged, shown in the admin and by ``manage.py check``) and
never stops the others from loading.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from django.apps import AppConfig, apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule

from jobs_catalog.decorators import current_registry, current_source
from jobs_catalog.registry import PluginProblem, Registry
from jobs_catalog.registry import registry as default_registry

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jobs_catalog.jobs"
BUILTIN_MODULES = (
    "jobs_catalog.builtin.http",
    "jobs_catalog.builtin.files",
    "jobs_catalog.builtin.commands",
    "jobs_catalog.builtin.downloads",
    "jobs_catalog.builtin.archiving",
    "jobs_catalog.builtin.extraction",
)


def discover(
    registry: Registry = default_registry,
    *,
    builtin_modules: Iterable[str] = BUILTIN_MODULES,
    app_configs: Iterable[AppConfig] | None = None,
    plugin_entry_points: Iterable[EntryPoint] | None = None,
) -> Registry:
    """Load every job source once per registry, in a fixed order (built-ins, apps in
    INSTALLED_APPS order, then packages by name), so a name clash resolves the same way
    on every machine."""
    if registry.discovered:
        return registry
    registry.discovered = True
    for module in builtin_modules:
        load_module(registry, module, source="built-in")
    for app_config in apps.get_app_configs() if app_configs is None else app_configs:
        if app_config.module is not None and module_has_submodule(app_config.module, "jobs"):
            load_module(registry, f"{app_config.name}.jobs", source=f"app {app_config.label}")
    if plugin_entry_points is None:
        plugin_entry_points = entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in sorted(plugin_entry_points, key=_entry_point_key):
        load_entry_point(registry, entry_point)
    enforce_time_limit_ceiling(registry, settings.JOBS_MAX_TIME_LIMIT)
    return registry


def load_module(registry: Registry, module: str, *, source: str) -> ModuleType | None:
    with _loading(registry, source):
        try:
            return importlib.import_module(module)
        except Exception as exc:
            _report_broken(registry, source, module, exc)
            return None


def load_entry_point(registry: Registry, entry_point: EntryPoint) -> object | None:
    dist = entry_point.dist
    package = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
    source = f"package {package} (entry point {entry_point.name!r})"
    with _loading(registry, source):
        try:
            return entry_point.load()
        except Exception as exc:
            _report_broken(registry, source, entry_point.module, exc)
            return None


def enforce_time_limit_ceiling(registry: Registry, ceiling: int) -> None:
    """Refuse jobs that ask for more time than the platform allows: the broker's visibility
    timeout is sized from that ceiling, so a longer job would be delivered twice."""
    for job in list(registry):
        longest = max(job.time_limit or 0, job.soft_time_limit or 0)
        if longest > ceiling:
            registry.refuse(
                job,
                PluginProblem(
                    source=job.source,
                    kind="limit",
                    job=job.name,
                    message=(
                        f"job {job.name!r} asks for a {longest}s time limit, above "
                        f"JOBS_MAX_TIME_LIMIT ({ceiling}s); it is not loaded"
                    ),
                ),
            )


@contextmanager
def _loading(registry: Registry, source: str) -> Iterator[None]:
    source_token = current_source.set(source)
    registry_token = current_registry.set(registry)
    try:
        yield
    finally:
        current_registry.reset(registry_token)
        current_source.reset(source_token)


def _report_broken(registry: Registry, source: str, module: str, exc: Exception) -> None:
    dropped = registry.discard_module(module)
    lost = f" (its jobs {', '.join(dropped)} are unavailable)" if dropped else ""
    registry.report(
        PluginProblem(
            source=source,
            module=module,
            message=f"could not load {module}: {type(exc).__name__}: {exc}{lost}",
            detail="".join(traceback.format_exception(exc)),
        )
    )


def _entry_point_key(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    return (dist.name if dist is not None else "", entry_point.name)
