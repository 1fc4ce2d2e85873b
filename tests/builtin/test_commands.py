from __future__ import annotations

import pytest

from jobs_catalog import JobContext
from jobs_catalog.builtin import commands
from jobs_catalog.builtin.commands import ManagementCommandError
from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from tests.builtin.conftest import assert_field_error

NAME = "builtin.management_command"


@pytest.fixture
def job(settings):
    # "check" needs no database.
    settings.JOBS_MANAGEMENT_COMMANDS = ["check", "clearsessions"]
    return registry.get(NAME)


def run(job, **params):
    return job.call(params, JobContext(job=NAME))


def test_runs_an_allowed_command_and_keeps_its_output(job):
    result = run(job, command="check", args=["--tag", "models"])

    assert result["command"] == "check" and result["args"] == ["--tag", "models"]
    assert "System check identified no issues" in result["output"]
    assert result["error_output"] == "" and result["truncated"] is False


def test_error_output_is_kept_apart(job, settings):
    settings.DEBUG = True  # a deployment warning, which check writes to stderr

    result = run(job, command="check", args=["--deploy", "--fail-level", "CRITICAL"])

    assert "security.W018" in result["error_output"]


def test_command_error_fails_the_job_with_its_message(job):
    with pytest.raises(ManagementCommandError) as caught:
        run(job, command="check", args=["--tag", "no-such-tag"])

    assert "manage.py check failed" in str(caught.value)
    assert "no-such-tag" in str(caught.value)
    assert not job.retry.is_retryable(caught.value)


def test_unknown_option_fails_the_job(job):
    with pytest.raises(ManagementCommandError, match="unrecognized arguments: --nope"):
        run(job, command="check", args=["--nope"])


@pytest.mark.django_db
def test_clearsessions(job):
    assert run(job, command="clearsessions")["command"] == "clearsessions"


def test_command_outside_the_allowlist_is_refused(job):
    with pytest.raises(ParameterError) as caught:
        job.validate({"command": "flush", "args": ["--no-input"]})

    assert_field_error(caught.value, NAME, "command")
    assert "allowed: check, clearsessions" in str(caught.value)


def test_allowlist_is_read_at_validation_time(job, settings):
    assert job.validate({"command": "check"}) == {"command": "check", "args": []}
    settings.JOBS_MANAGEMENT_COMMANDS = []
    with pytest.raises(ParameterError, match="set JOBS_MANAGEMENT_COMMANDS"):
        job.validate({"command": "check"})


def test_allowed_but_missing_command_is_refused(job, settings):
    settings.JOBS_MANAGEMENT_COMMANDS = ["no_such_command"]

    with pytest.raises(ParameterError, match="no installed app provides it"):
        job.validate({"command": "no_such_command"})


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "command", "required parameter is missing"),
        ({"command": "check", "args": "--deploy"}, "args", "valid list"),
        ({"command": "check", "args": [1]}, "args.0", "valid string"),
        ({"command": "check", "timeout": 5}, "timeout", "unexpected parameter"),
    ],
)
def test_bad_parameters_are_refused(job, params, field, message):
    with pytest.raises(ParameterError) as caught:
        job.validate(params)

    assert_field_error(caught.value, NAME, field)
    assert message in " ".join(caught.value.by_field()[field])


def test_output_keeps_the_end(monkeypatch):
    monkeypatch.setattr(commands, "OUTPUT_LIMIT", 5)

    assert commands._tail("0123456789") == ("56789", True)
    assert commands._tail("01234") == ("01234", False)
