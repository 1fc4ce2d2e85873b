"""Parameters declared by signature, validated by pydantic, reported by field."""

from enum import Enum
from typing import Literal

import pytest

from jobs_catalog import JobContext, JobDefinitionError, Param, ParameterError
from jobs_catalog.definition import Job
from jobs_catalog.params import MASK


class Level(Enum):
    LOW = "low"
    HIGH = "high"


def report(
    ctx: JobContext,
    recipients: list[str],
    day: str = Param("yesterday", help="Which day to report on"),
    limit: int = Param(10, ge=1, le=100),
    fmt: Literal["pdf", "csv"] = "pdf",
    level: Level = Level.LOW,
    password: str = Param("", secret=True, help="SMTP password"),
):
    return {"recipients": recipients, "day": day, "limit": limit, "fmt": fmt, "ctx": ctx.job}


@pytest.fixture
def report_job():
    return Job(name="tests.report", func=report, title="Report")


def test_signature_becomes_the_schema(report_job):
    info = {p.name: p for p in report_job.params()}
    assert list(info) == ["recipients", "day", "limit", "fmt", "level", "password"]
    assert info["recipients"].required and info["recipients"].default is None
    assert info["day"].help == "Which day to report on" and info["day"].default == "yesterday"
    assert info["fmt"].choices == ("pdf", "csv") and info["fmt"].type == "choice"
    assert info["level"].choices == ("low", "high")
    assert info["password"].secret and not info["day"].secret
    schema = report_job.params_schema()
    assert schema["required"] == ["recipients"]
    assert schema["properties"]["password"]["secret"] is True
    assert schema["properties"]["limit"]["maximum"] == 100


def test_valid_params_are_normalised_for_storage(report_job):
    cleaned = report_job.validate({"recipients": ["a@x"], "limit": "5", "level": "high"})
    assert cleaned == {
        "recipients": ["a@x"],
        "day": "yesterday",
        "limit": 5,
        "fmt": "pdf",
        "level": "high",
        "password": "",
    }


def test_call_passes_typed_values_and_the_context(report_job):
    result = report_job.call({"recipients": ["a@x"]}, JobContext(job="tests.report"))
    assert result["ctx"] == "tests.report" and result["limit"] == 10


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "recipients", "required parameter is missing"),
        ({"recipients": ["a"], "limit": "many"}, "limit", "valid integer"),
        ({"recipients": ["a"], "limit": 1000}, "limit", "less than or equal to 100"),
        ({"recipients": ["a"], "fmt": "docx"}, "fmt", "'pdf' or 'csv'"),
        ({"recipients": ["a"], "colour": "red"}, "colour", "unexpected parameter"),
        ({"recipients": "a@x"}, "recipients", "valid list"),
    ],
)
def test_bad_params_name_the_job_and_the_field(report_job, params, field, fragment):
    with pytest.raises(ParameterError) as caught:
        report_job.validate(params)
    error = caught.value
    assert error.job == "tests.report"
    assert field in error.by_field()
    assert fragment in str(error)
    assert str(error).startswith("job 'tests.report': invalid parameters: ")


def test_a_wrongly_typed_secret_never_shows_in_the_error():
    def login(attempts: int = Param(1, secret=True)):
        pass

    job = Job(name="tests.login", func=login, title="Login")
    with pytest.raises(ParameterError) as caught:
        job.validate({"attempts": "hunter2-very-secret"})
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(caught.value.errors)


def test_params_must_be_a_mapping(report_job):
    with pytest.raises(ParameterError, match=r"\(parameters\): must be a mapping"):
        report_job.validate(["recipients"])


def test_mask_hides_secret_values_only(report_job):
    masked = report_job.mask({"recipients": ["a"], "password": "s3cret", "day": "today"})
    assert masked == {"recipients": ["a"], "password": MASK, "day": "today"}
    assert report_job.mask({"password": ""})["password"] == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "nodots"}, "not a stable dotted name"),
        ({"name": "Bad.Name"}, "not a stable dotted name"),
        ({"soft_time_limit": 10, "time_limit": 5}, "must be below time_limit"),
        ({"time_limit": 0}, "must be positive"),
    ],
)
def test_bad_declarations_fail_at_import_time(kwargs, message):
    options = {"name": "tests.bad", "func": lambda: None, "title": "Bad", **kwargs}
    with pytest.raises(JobDefinitionError, match=message):
        Job(**options)


def test_var_keyword_parameters_are_refused():
    def loose(**kwargs):
        pass

    with pytest.raises(JobDefinitionError, match=r"\*kwargs is not allowed"):
        Job(name="tests.loose", func=loose, title="Loose")


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [(None, None, (300, 360)), (600, None, (600, 601)), (None, 100, (99, 100)), (5, 10, (5, 10))],
)
def test_effective_time_limits_keep_soft_below_hard(soft, hard, expected):
    job = Job(name="tests.t", func=lambda: None, title="T", soft_time_limit=soft, time_limit=hard)
    assert job.effective_time_limits(300, 360) == expected


def test_errors_survive_pickling_across_processes(report_job):
    import pickle

    from jobs_catalog import UnknownJobError

    with pytest.raises(ParameterError) as caught:
        report_job.validate({})
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value) and copy.by_field() == caught.value.by_field()
    unknown = pickle.loads(pickle.dumps(UnknownJobError("a.b", ["c.d"])))
    assert str(unknown) == "unknown job 'a.b'; known jobs: c.d"


def test_defaults_are_json_ready(report_job):
    import json

    defaults = report_job.defaults()
    assert defaults["level"] == "low"
    assert json.loads(json.dumps(defaults)) == defaults
