"""The schedule form: parameter fields made from a job's signature, validation errors on the
right field, secrets that are never shown, times in the schedule's zone, the cron preview."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pytest
from django import forms
from django.utils import timezone
from pydantic import AfterValidator

from jobs_catalog import Param
from jobs_catalog.definition import Job
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from jobs_catalog.secrets import SEALED, is_sealed, new_key, unseal, unseal_params
from jobs_catalog.sync import definition_values
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from scheduler.web.forms import (
    BackfillForm,
    KeyValueField,
    Kind,
    LinesField,
    SecretField,
    classify,
    schedule_form_class,
)
from scheduler.web.views import preview_payload

BERLIN = ZoneInfo("Europe/Berlin")
SAMPLE_JOB = "testing.admin_form"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _even(value: int) -> int:
    if value % 2:
        raise ValueError("must be even")
    return value


def sample(
    *,
    title: Annotated[str, Param(help="what to call it", max_length=40)],
    count: Annotated[int, Param(ge=1, le=10, help="how many")] = 3,
    pairs: Annotated[int, AfterValidator(_even)] = 2,
    ratio: float = 0.5,
    verbose: bool = False,
    mode: Literal["fast", "slow"] = "fast",
    color: Color = Color.RED,
    tags: Annotated[list[str], Param(default_factory=list)],
    ports: Annotated[list[int], Param(default_factory=list)],
    labels: Annotated[dict[str, str], Param(default_factory=dict)],
    matrix: Annotated[dict[str, list[int]], Param(default_factory=dict)],
    limit: int | None = None,
    token: Annotated[str, Param(secret=True, help="API token")] = "",
) -> None:
    """A job with one parameter of each kind."""


def needs_a_key(*, api_key: Annotated[str, Param(secret=True)]) -> None:
    """A job whose secret is required."""


def _register(name: str, func: Any) -> JobDefinition:
    job = Job(name=name, func=func, title=name.split(".")[-1].replace("_", " ").title())
    registry.register(job)
    now = timezone.now()
    values = definition_values(job)
    # The mirror keeps defaults as JSON; an Enum default is stored as its value.
    values["defaults"] = json.loads(json.dumps(values["defaults"], default=lambda o: o.value))
    definition, _ = JobDefinition.objects.update_or_create(
        name=name, defaults={**values, "last_seen": now, "changed_at": now}
    )
    return definition


@pytest.fixture
def sample_job(db):
    definition = _register(SAMPLE_JOB, sample)
    yield definition
    registry.unregister(SAMPLE_JOB)


@pytest.fixture
def secret_job(db):
    definition = _register("testing.needs_a_key", needs_a_key)
    yield definition
    registry.unregister("testing.needs_a_key")


def base_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "form test",
        "description": "",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "enabled": "on",
        "overlap_policy": "allow",
        "misfire_policy": "run_once",
        "catchup_window": "3600",
        "max_catchup_runs": "10",
        "jitter": "0",
        "queue": "",
    }
    data.update(overrides)
    return data


def sample_data(**overrides: Any) -> dict[str, Any]:
    data = base_data(
        param__title="report",
        param__count="4",
        param__pairs="2",
        param__ratio="0.25",
        param__verbose="on",
        param__mode="slow",
        param__color="blue",
        param__tags="alpha\nbeta, gamma\n\n",
        param__ports="80, 443\n8080",
        param__labels="team: core\nowner: ops: on-call",
        param__matrix='{"a": [1, 2]}',
        param__limit="",
        param__token="tok-123",
    )
    data.update(overrides)
    return data


def form_for(definition: JobDefinition, data=None, instance=None) -> forms.ModelForm:
    form_class = schedule_form_class(definition, editing=instance is not None)
    return form_class(data, instance=instance)


# --- the mapping from annotation to field --------------------------------------------------
@pytest.mark.parametrize(
    ("annotation", "kind", "nullable"),
    [
        (str, Kind.TEXT, False),
        (Path, Kind.TEXT, False),
        (int, Kind.INTEGER, False),
        (float, Kind.FLOAT, False),
        (bool, Kind.BOOLEAN, False),
        (bool | None, Kind.BOOLEAN, True),
        (Literal["a", "b"], Kind.CHOICE, False),
        (Color, Kind.CHOICE, False),
        (list[str], Kind.LIST, False),
        (list[int | str], Kind.LIST, False),
        (tuple[int, ...], Kind.LIST, False),
        (dict[str, str], Kind.MAPPING, False),
        (dict[str, int], Kind.MAPPING, False),
        (dict[str, list[int]], Kind.JSON, False),
        (list[dict[str, str]], Kind.JSON, False),
        (Any, Kind.JSON, False),
        (int | None, Kind.INTEGER, True),
        (Annotated[int, "meta"] | None, Kind.INTEGER, True),
    ],
)
def test_each_annotation_gets_its_field_kind(annotation, kind, nullable):
    assert classify(annotation)[:2] == (kind, nullable)


def test_only_plain_text_list_items_keep_their_commas():
    assert classify(list[str])[2] is False
    assert classify(list[int])[2] is True
    assert classify(list[int | str])[2] is True


def test_fields_follow_the_parameters(sample_job):
    form = form_for(sample_job)
    fields = form.fields
    assert isinstance(fields["param__title"], forms.CharField)
    assert fields["param__title"].required and fields["param__title"].max_length == 40
    assert "what to call it" in fields["param__title"].help_text
    count = fields["param__count"]
    assert isinstance(count, forms.IntegerField) and not count.required
    assert (count.min_value, count.max_value) == (1, 10)
    assert isinstance(fields["param__ratio"], forms.FloatField)
    assert isinstance(fields["param__verbose"], forms.BooleanField)
    assert not fields["param__verbose"].required
    assert [c[0] for c in fields["param__mode"].choices] == ["fast", "slow"]
    assert [c[0] for c in fields["param__color"].choices] == ["red", "blue"]
    assert isinstance(fields["param__tags"], LinesField)
    assert "One item per line" in fields["param__tags"].help_text
    assert isinstance(fields["param__labels"], KeyValueField)
    assert isinstance(fields["param__matrix"], forms.JSONField)
    assert "JSON" in fields["param__matrix"].help_text
    assert fields["param__matrix"].label == "Matrix"
    token = fields["param__token"]
    assert isinstance(token, SecretField)
    assert isinstance(token.widget, forms.PasswordInput) and not token.widget.render_value
    # Only the one exotic parameter is a JSON box; there is no box for all of them.
    assert [n for n, f in fields.items() if isinstance(f, forms.JSONField)] == ["param__matrix"]
    assert "params" not in fields and "job" not in fields
    # On a new schedule, defaults are the initial values.
    assert form.initial["param__count"] == 3
    assert form.initial["param__mode"] == "fast"
    assert form.initial["param__color"] == "red"
    assert "param__token" not in form.initial


def test_help_text_is_escaped(db):
    def shouty(*, x: Annotated[str, Param(help="<b>bold</b>")] = "") -> None:
        """Escapes."""

    definition = _register("testing.shouty", shouty)
    try:
        field = form_for(definition).fields["param__x"]
    finally:
        registry.unregister("testing.shouty")
    assert "<b>" not in field.help_text and "&lt;b&gt;" in field.help_text


# --- cleaning ----------------------------------------------------------------------------------
def test_a_valid_form_yields_typed_parameters(sample_job):
    form = form_for(sample_job, sample_data())
    assert form.is_valid(), form.errors
    params = form.instance.params
    assert params["title"] == "report"
    assert params["count"] == 4 and params["ratio"] == 0.25 and params["verbose"] is True
    assert params["mode"] == "slow" and params["color"] == "blue"
    assert params["tags"] == ["alpha", "beta, gamma"]
    assert params["ports"] == [80, 443, 8080]
    assert params["labels"] == {"team": "core", "owner": "ops: on-call"}
    assert params["matrix"] == {"a": [1, 2]}
    assert params["limit"] is None
    assert is_sealed(params["token"]) and unseal(params["token"]) == "tok-123"


def test_an_unchecked_box_is_false_and_a_blank_number_the_default(sample_job):
    data = sample_data(param__count="")
    del data["param__verbose"]
    form = form_for(sample_job, data)
    assert form.is_valid(), form.errors
    assert form.instance.params["verbose"] is False
    assert form.instance.params["count"] == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("param__pairs", "3", "must be even"),
        ("param__ports", "80\nhttp", "item 2: "),
        ("param__count", "11", "less than or equal to 10"),
        ("param__labels", "no colon here", "Line 1: write it as 'key: value'."),
        ("param__matrix", "{not json", "Enter a valid JSON."),
        ("param__mode", "medium", "Select a valid choice."),
        ("param__title", "", "This field is required."),
    ],
)
def test_parameter_errors_are_shown_on_their_field(sample_job, field, value, message):
    form = form_for(sample_job, sample_data(**{field: value}))
    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors
    others = {name for name in form.errors if name.startswith("param__")} - {field}
    assert not others, form.errors


def test_the_job_validation_is_the_last_word(sample_job):
    # Accepted by the form field (an integer), refused by the job's own validator.
    form = form_for(sample_job, sample_data(param__pairs="5"))
    assert not form.is_valid()
    assert form.errors["param__pairs"] == ["must be even"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "minute field: value 61 out of range 0-59"),
        ({"cron": "* * *"}, "cron", "expected 5 fields"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        (
            {
                "start_at_0": "2026-07-02",
                "start_at_1": "10:00",
                "end_at_0": "2026-07-01",
                "end_at_1": "10:00",
            },
            "end_at",
            "The end must be after the start.",
        ),
    ],
)
def test_schedule_errors_name_their_field(sample_job, overrides, field, message):
    form = form_for(sample_job, sample_data(**overrides))
    assert not form.is_valid()
    assert any(message in error for error in form.errors[field]), form.errors


# --- the policies: numbers that make sense, a cron that fires, a queue name ----------------
REFUSED_POLICIES = [
    ({"retry_backoff_base": "-5"}, "retry_backoff_base", "more than 0"),
    ({"retry_backoff_base": "0"}, "retry_backoff_base", "more than 0"),
    ({"retry_backoff_cap": "-1"}, "retry_backoff_cap", "more than 0"),
    ({"retry_max_attempts": "0"}, "retry_max_attempts", "between 1 (no retry) and 100"),
    ({"retry_max_attempts": "500"}, "retry_max_attempts", "between 1 (no retry) and 100"),
    (
        {"retry_backoff_base": "10", "retry_backoff_cap": "5"},
        "retry_backoff_cap",
        "at least the backoff base (10 s)",
    ),
    # The job's own cap is 300 s: a base above it needs a cap of its own.
    ({"retry_backoff_base": "600"}, "retry_backoff_base", "the backoff cap (300 s, the job's"),
    ({"retry_backoff_cap": "1"}, "retry_backoff_cap", "at least the backoff base (2 s)"),
    ({"retry_backoff_base": "100000"}, "retry_backoff_base", "at most 86400 seconds"),
    ({"cron": "0 0 31 2 *"}, "cron", "never fires"),
    ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
    ({"cron": "0 0 31 4,6,9,11 *"}, "cron", "never fires"),
    ({"cron": "@reboot"}, "cron", "@reboot is not supported"),
    ({"cron": "*/5 * * * *", "jitter": "604800"}, "jitter", "between 0 and 86400"),
    (
        {"cron": "*/5 * * * *", "jitter": "300", "catchup_window": "3600"},
        "jitter",
        "less than the shortest time between two consecutive fire times",
    ),
    (
        {"cron": "0 * * * *", "jitter": "3600", "catchup_window": "7200"},
        "jitter",
        "are only 3600 s apart",
    ),
    ({"catchup_window": "0"}, "catchup_window", "at least the jitter plus the misfire grace"),
    (
        {"cron": "0 0 * * *", "jitter": "7200", "catchup_window": "7200"},
        "catchup_window",
        "(7260 s)",
    ),
    ({"catchup_window": str(40 * 86400)}, "catchup_window", "between 0 and 2678400"),
    ({"max_catchup_runs": "0"}, "max_catchup_runs", "between 1 and 1000"),
    ({"max_catchup_runs": "5000"}, "max_catchup_runs", "between 1 and 1000"),
    ({"queue": "../../x y"}, "queue", "is no queue name"),
    ({"queue": "jobs/high"}, "queue", "is no queue name"),
    ({"queue": "q\u00e9"}, "queue", "is no queue name"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), REFUSED_POLICIES)
def test_nonsense_policies_are_refused_on_their_field(sample_job, overrides, field, message):
    form = form_for(sample_job, sample_data(**overrides))
    assert not form.is_valid()
    assert any(message in error for error in form.errors.get(field, ())), form.errors
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"cron": "0 0 29 2 *"},  # every leap year
        {"cron": "0 0 31 2 1"},  # day fields ORed: every Monday in February
        {"cron": "*/5 * * * *", "jitter": "299"},
        {"cron": "0 0 * * *", "jitter": "3600", "catchup_window": "3660"},
        {"queue": "billing.v2:high-prio_1"},
        {"retry_max_attempts": "1", "retry_backoff_base": "0.5", "retry_backoff_cap": "0.5"},
        {"retry_max_attempts": "100", "retry_backoff_base": "600", "retry_backoff_cap": "900"},
        {"catchup_window": "60", "max_catchup_runs": "1000"},
    ],
)
def test_sensible_policies_are_accepted(sample_job, overrides):
    form = form_for(sample_job, sample_data(**overrides))
    assert form.is_valid(), form.errors


def test_the_jitter_bound_counts_the_short_spring_day(sample_job):
    # A daily run in Berlin is 23 h after the one before on the day the clocks go forward.
    form = form_for(sample_job, sample_data(cron="0 3 * * *", jitter=str(23 * 3600)))
    assert not form.is_valid()
    assert "daylight-saving changes included" in " ".join(form.errors["jitter"])
    form = form_for(
        sample_job,
        sample_data(cron="0 3 * * *", jitter=str(23 * 3600 - 1), catchup_window="86400"),
    )
    assert form.is_valid(), form.errors


def test_the_catchup_window_follows_the_misfire_grace(sample_job, settings):
    settings.SCHEDULER_MISFIRE_GRACE = 300
    form = form_for(sample_job, sample_data(catchup_window="120"))
    assert not form.is_valid()
    assert "(300 s)" in " ".join(form.errors["catchup_window"])


def test_the_cron_is_normalised(sample_job):
    form = form_for(sample_job, sample_data(cron="  @DAILY "))
    assert form.is_valid(), form.errors
    assert form.instance.cron == "0 0 * * *"


# --- times in the schedule's zone -------------------------------------------------------------
def test_start_and_end_are_wall_times_in_the_schedule_zone(sample_job):
    data = sample_data(
        start_at_0="2026-07-01", start_at_1="10:00", end_at_0="2027-01-15", end_at_1="09:30"
    )
    form = form_for(sample_job, data)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["start_at"] == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert form.cleaned_data["end_at"] == datetime(2027, 1, 15, 8, 30, tzinfo=UTC)
    schedule = save_schedule(form.save(commit=False), validate=False)
    shown = form_for(sample_job, instance=Schedule.objects.get(pk=schedule.pk))
    assert 'value="10:00:00"' in str(shown["start_at"])
    assert 'value="2026-07-01"' in str(shown["start_at"])


def test_a_wall_time_the_clocks_skip_is_refused(sample_job):
    data = sample_data(start_at_0="2026-03-29", start_at_1="02:30")
    form = form_for(sample_job, data)
    assert not form.is_valid()
    assert "does not exist in Europe/Berlin" in form.errors["start_at"][0]


def test_backfill_form_reads_times_in_the_given_zone_and_checks_the_order():
    zone = ZoneInfo("America/New_York")
    ok = BackfillForm(
        {"start_0": "2026-01-01", "start_1": "00:00", "end_0": "2026-01-02", "end_1": "00:00"},
        zone=zone,
    )
    assert ok.is_valid(), ok.errors
    assert ok.cleaned_data["start"] == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    backwards = BackfillForm(
        {"start_0": "2026-01-02", "start_1": "00:00", "end_0": "2026-01-01", "end_1": "00:00"},
        zone=zone,
    )
    assert not backwards.is_valid()
    assert backwards.errors["end"] == ["The end must be after the start."]


# --- secrets ----------------------------------------------------------------------------------
@pytest.fixture
def saved_sample(sample_job):
    form = form_for(sample_job, sample_data(param__token="tok-SECRET-1"))
    assert form.is_valid(), form.errors
    return save_schedule(form.save(commit=False), validate=False)


def test_a_stored_secret_is_never_rendered(sample_job, saved_sample):
    form = form_for(sample_job, instance=saved_sample)
    html = form.as_div()
    assert "tok-SECRET-1" not in html
    assert saved_sample.params["token"][SEALED] not in html  # nor its sealed form
    assert "A value is stored." in form.fields["param__token"].help_text
    # Not even echoed back when the form has errors.
    bound = form_for(
        sample_job, sample_data(param__token="tok-NEW", cron="bad"), instance=saved_sample
    )
    assert not bound.is_valid()
    assert "tok-NEW" not in bound.as_div() and "tok-SECRET-1" not in bound.as_div()


def test_a_blank_secret_keeps_the_stored_value(sample_job, saved_sample):
    form = form_for(sample_job, sample_data(param__token="", param__count="5"), saved_sample)
    assert form.is_valid(), form.errors
    assert unseal(form.instance.params["token"]) == "tok-SECRET-1"
    assert form.instance.params["count"] == 5


def test_a_stored_secret_no_key_opens_must_be_typed_again(sample_job, saved_sample, settings):
    settings.SECRETS_ENCRYPTION_KEYS = [new_key()]  # not the key it was sealed with
    form = form_for(sample_job, sample_data(param__token=""), saved_sample)
    assert not form.is_valid()
    [error] = form.errors["param__token"]
    assert "none of the keys opens its stored value" in error
    assert "tok-SECRET-1" not in error and saved_sample.params["token"][SEALED] not in error
    form = form_for(sample_job, sample_data(param__token="tok-3"), saved_sample)
    assert form.is_valid(), form.errors
    assert unseal(form.instance.params["token"]) == "tok-3"


def test_a_typed_secret_replaces_and_clear_removes_it(sample_job, saved_sample):
    form = form_for(sample_job, sample_data(param__token="tok-2"), saved_sample)
    assert form.is_valid(), form.errors
    assert unseal(form.instance.params["token"]) == "tok-2"
    form = form_for(sample_job, sample_data(param__token="", clear__token="on"), saved_sample)
    assert form.is_valid(), form.errors
    assert form.instance.params["token"] == ""


def test_a_required_secret_must_be_given_once(secret_job):
    form = form_for(secret_job, base_data())
    assert not form.is_valid()
    assert form.errors["param__api_key"] == ["This field is required."]
    assert "clear__api_key" not in form.fields
    form = form_for(secret_job, base_data(param__api_key="k-1"))
    assert form.is_valid(), form.errors
    schedule = save_schedule(form.save(commit=False), validate=False)
    edit = form_for(secret_job, base_data(param__api_key=""), Schedule.objects.get(pk=schedule.pk))
    assert "clear__api_key" not in edit.fields
    assert edit.is_valid(), edit.errors
    assert unseal_params(edit.instance.params, ["api_key"]) == {"api_key": "k-1"}


def test_an_edit_shows_the_stored_values(sample_job, saved_sample):
    form = form_for(sample_job, instance=saved_sample)
    assert str(form["param__ports"].value()) == "80\n443\n8080"
    assert form["param__labels"].value() == "team: core\nowner: ops: on-call"
    assert form["param__mode"].value() == "slow"
    assert form["param__count"].value() == 4


# --- the cron preview --------------------------------------------------------------------------
def test_preview_lists_the_next_fire_times_in_the_schedule_zone():
    now = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    payload = preview_payload("30 2 * * *", "Europe/Berlin", now)
    assert payload["error"] is None
    assert payload["description"] == "At 02:30"
    # The spring-forward day: 02:30 does not exist and fires at 03:00 CEST.
    assert payload["next"] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
        "2026-04-01T02:30:00+02:00",
    ]
    assert payload["next_display"][1] == "Sun 2026-03-29 03:00:00 CEST (UTC+02:00)"


def test_preview_reports_errors():
    assert "out of range" in preview_payload("99 * * * *", "UTC")["error"]
    bad_zone = preview_payload("0 * * * *", "Nowhere/Town")
    assert bad_zone["error"] == "unknown time zone 'Nowhere/Town'"
    assert bad_zone["description"] == "Every hour"
    assert preview_payload("0 0 30 2 *", "UTC")["error"] == "This expression never fires."


def test_the_form_shows_the_preview_without_a_script(sample_job):
    html = str(form_for(sample_job, sample_data(cron="0 9 * * 1-5"))["cron"])
    assert "At 09:00, Monday through Friday" in html
    assert html.count("<li>") == 5
    assert "data-preview-url" not in html  # no endpoint given: the script leaves it alone
