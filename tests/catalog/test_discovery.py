"""Discovery: built-ins, an app's jobs module, entry points; broken plugins are isolated."""

from importlib.metadata import EntryPoint

import pytest
from django.core import checks

from jobs_catalog import UnknownJobError
from jobs_catalog.discovery import BUILTIN_MODULES, ENTRY_POINT_GROUP, discover
from jobs_catalog.registry import registry as process_registry


def plugin(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"tests.fixtures.plugins.{module}", group=ENTRY_POINT_GROUP)


def test_entry_point_plugins_are_loaded_with_their_source(fresh_registry):
    discover(
        fresh_registry,
        builtin_modules=(),
        app_configs=(),
        plugin_entry_points=[plugin("good", "good")],
    )
    assert [j.name for j in fresh_registry] == ["plugin.echo", "plugin.pick"]
    assert "entry point 'good'" in fresh_registry.get("plugin.echo").source
    assert fresh_registry.problems == []


def test_a_broken_plugin_is_reported_and_the_others_still_load(fresh_registry):
    discover(
        fresh_registry,
        builtin_modules=(),
        plugin_entry_points=[plugin("broken", "broken"), plugin("good", "good")],
    )
    assert "plugin.echo" in fresh_registry and "plugin.pick" in fresh_registry
    # What the broken module registered before it crashed is withdrawn with it.
    assert "plugin.registered_before_the_crash" not in fresh_registry
    [problem] = fresh_registry.problems
    assert problem.kind == "import" and problem.module == "tests.fixtures.plugins.broken"
    assert "RuntimeError: plugin blew up on import" in problem.message
    assert "plugin.registered_before_the_crash" in problem.message
    assert "Traceback" in problem.detail


def test_two_plugins_claiming_one_name_is_an_error_naming_both(fresh_registry):
    discover(
        fresh_registry,
        builtin_modules=(),
        plugin_entry_points=[plugin("a_good", "good"), plugin("b_dup", "duplicate")],
    )
    [problem] = fresh_registry.problems
    assert problem.kind == "duplicate"
    assert "tests.fixtures.plugins.good.echo" in problem.message
    assert "tests.fixtures.plugins.duplicate.other_echo" in problem.message
    # The first one found keeps the name; the order is fixed, so this is stable.
    assert fresh_registry.get("plugin.echo").func.__module__ == "tests.fixtures.plugins.good"


def test_a_job_above_the_platform_time_ceiling_is_refused(fresh_registry, settings):
    settings.JOBS_MAX_TIME_LIMIT = 3600
    discover(
        fresh_registry,
        builtin_modules=(),
        app_configs=(),
        plugin_entry_points=[plugin("t", "too_long")],
    )
    assert "plugin.too_long" not in fresh_registry
    [problem] = fresh_registry.problems
    assert problem.kind == "limit" and "JOBS_MAX_TIME_LIMIT (3600s)" in problem.message


def test_an_installed_apps_jobs_module_is_autodiscovered(fresh_registry):
    from django.apps import apps

    discover(fresh_registry, builtin_modules=(), plugin_entry_points=[])
    assert fresh_registry.problems == []
    # Apps without a jobs module are passed over quietly.
    assert {job.source for job in fresh_registry} == {"app sample_app"}
    assert apps.get_app_config("sample_app")
    job = fresh_registry.get("tests.touch_file")
    assert job.source == "app sample_app"
    assert fresh_registry.get("tests.special_queue").queue == "tests_special"


def test_builtin_modules_are_discovered_first_and_once(fresh_registry):
    discover(
        fresh_registry, builtin_modules=["tests.fixtures.plugins.good"], plugin_entry_points=[]
    )
    assert fresh_registry.get("plugin.echo").source == "built-in"
    discover(fresh_registry, plugin_entry_points=[plugin("dup", "duplicate")])
    assert fresh_registry.problems == []  # a second call does nothing


def test_unknown_job_lists_the_known_ones(fresh_registry):
    discover(
        fresh_registry,
        builtin_modules=(),
        app_configs=(),
        plugin_entry_points=[plugin("good", "good")],
    )
    with pytest.raises(UnknownJobError) as caught:
        fresh_registry.get("plugin.nope")
    assert str(caught.value) == "unknown job 'plugin.nope'; known jobs: plugin.echo, plugin.pick"


def test_the_process_catalog_holds_the_builtins_without_problems():
    modules = {job.module for job in process_registry}
    assert set(BUILTIN_MODULES) <= modules
    assert process_registry.problems == []


def test_system_check_reports_plugin_problems(monkeypatch, fresh_registry):
    discover(
        fresh_registry,
        builtin_modules=(),
        app_configs=(),
        plugin_entry_points=[plugin("b", "broken")],
    )
    monkeypatch.setattr("jobs_catalog.checks.registry", fresh_registry)
    messages = checks.run_checks(tags=["jobs_catalog"])
    assert [m.id for m in messages] == ["jobs_catalog.W001"]
    assert messages[0].level == checks.WARNING  # a broken plugin must not stop the platform
