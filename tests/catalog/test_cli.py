"""``manage.py jobs``: list, describe, run (in-process), sync."""

import json
import os
from importlib.metadata import EntryPoint
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs_catalog.discovery import ENTRY_POINT_GROUP, discover
from scheduler.runs.models import JobRun


def use_plugins(monkeypatch, fresh_registry, *modules: str):
    """The command's catalog: these modules of tests.fixtures.plugins, as entry points."""
    entry_points = [
        EntryPoint(name=m, value=f"tests.fixtures.plugins.{m}", group=ENTRY_POINT_GROUP)
        for m in modules
    ]
    registry = discover(
        fresh_registry, builtin_modules=(), app_configs=(), plugin_entry_points=entry_points
    )
    monkeypatch.setattr("jobs_catalog.management.commands.jobs.registry", registry)
    return registry


@pytest.fixture
def catalog(monkeypatch, fresh_registry):
    return use_plugins(monkeypatch, fresh_registry, "good", "broken")


def jobs(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("jobs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_list_shows_jobs_and_problems(catalog):
    out, err = jobs("list")
    assert "plugin.echo" in out and "plugin.pick" in out and "Echo" in out
    assert "plugin blew up on import" in err


def test_a_plugin_with_a_nonsense_retry_policy_is_a_problem_the_cli_names(
    monkeypatch, fresh_registry
):
    use_plugins(monkeypatch, fresh_registry, "good", "bad_policy")
    out, err = jobs("list")
    assert "plugin.echo" in out and "plugin.bad_policy" not in out
    assert "retry policy: backoff_base must be more than 0" in err
    with pytest.raises(CommandError, match=r"unknown job 'plugin\.bad_policy'"):
        jobs("run", "plugin.bad_policy")


def test_list_json(catalog):
    out, _ = jobs("list", "--json")
    assert [j["name"] for j in json.loads(out)] == ["plugin.echo", "plugin.pick"]


def test_describe_shows_parameters_defaults_choices_and_secrets(catalog):
    out, _ = jobs("describe", "plugin.pick")
    assert "colour (choice; required; one of 'red', 'green')" in out
    assert "times (int; default 1)" in out
    assert "cancel:       terminates the job" in out
    out, _ = jobs("describe", "plugin.echo", "--json")
    described = json.loads(out)
    params = {p["name"]: p for p in described["parameters"]}
    assert params["token"]["secret"] is True and params["shout"]["default"] is False
    assert described["cancellable"] is False


@pytest.mark.django_db  # the run is recorded in the history
def test_run_prints_the_result_as_json(catalog):
    out, _ = jobs("run", "plugin.echo", "--param", "message=hi there", "-p", "shout=true")
    assert json.loads(out) == "HI THERE"
    out, _ = jobs("run", "plugin.pick", "--params-json", '{"colour": "red", "times": 2}')
    assert json.loads(out) == "redred"


@pytest.mark.django_db  # the run is recorded in the history
def test_a_text_parameter_keeps_what_was_typed(catalog):
    out, _ = jobs("run", "plugin.echo", "--param", "message=123")
    assert json.loads(out) == "123"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "plugin.nope"], "unknown job 'plugin.nope'; known jobs: plugin.echo"),
        (["run", "plugin.pick"], "colour: required parameter is missing"),
        (["run", "plugin.pick", "-p", "colour=blue"], "colour: Input should be 'red' or 'green'"),
        (["run", "plugin.pick", "-p", "colour=red", "-p", "times=x"], "times: Input should be"),
        (["run", "plugin.pick", "-p", "colour=red", "-p", "size=9"], "size: unexpected parameter"),
        (["run", "plugin.pick", "-p", "colour"], "expected KEY=VALUE"),
        (["run", "plugin.pick", "--params-json", "{nope"], "--params-json is not valid JSON"),
        (["describe", "plugin.nope"], "unknown job 'plugin.nope'"),
    ],
)
@pytest.mark.django_db
def test_bad_input_is_a_clear_error_with_exit_code_2(catalog, args, fragment):
    with pytest.raises(CommandError) as caught:
        jobs(*args)
    assert fragment in str(caught.value)
    assert caught.value.returncode == 2
    assert not JobRun.objects.exists()  # bad input changes nothing


@pytest.mark.django_db  # the run is recorded in the history
def test_a_failing_job_exits_1_with_its_error(catalog, monkeypatch):
    def explode(message: str):
        raise ValueError(f"cannot echo {message}")

    from jobs_catalog.definition import Job

    catalog.register(Job(name="plugin.explode", func=explode, title="Explode"))
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("jobs", "run", "plugin.explode", "-p", "message=x", stderr=err)
    assert caught.value.returncode == 1
    assert "job 'plugin.explode' failed: ValueError: cannot echo x" in str(caught.value)
    assert "Traceback" in err.getvalue()
    run = JobRun.objects.get()
    assert (run.trigger, run.status, run.attempt, run.max_attempts) == ("cli", "failed", 1, 1)
    assert run.error_type == "ValueError" and run.error_message == "cannot echo x"


@pytest.mark.django_db
def test_a_run_is_recorded_with_the_cli_trigger_and_masked_secrets(catalog):
    out, _ = jobs("run", "plugin.echo", "-p", "message=hi", "-p", "token=hunter22")
    assert json.loads(out) == "hi"
    run = JobRun.objects.get()
    assert (run.task_name, run.trigger, run.status) == ("plugin.echo", "cli", "succeeded")
    assert run.params == {"message": "hi", "token": "********"}
    assert run.result == "'hi'" and run.worker_pid == os.getpid()
    assert run.started_at <= run.finished_at and run.duration >= 0


@pytest.mark.django_db
def test_sync_command(catalog):
    out, _ = jobs("sync")
    assert out.startswith("Job catalog synced: 2 new")
