"""A schedule's own fields, checked by the model's ``clean()`` (whatever saves it: a form, a
script, the API to come) and held again by the database's check constraints."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from jobs_catalog.models import JobDefinition
from scheduler.schedules.models import Schedule

pytestmark = pytest.mark.django_db


def schedule(**fields) -> Schedule:
    values = {
        "name": "rules",
        "job": JobDefinition.objects.get(name="builtin.http_request"),
        "cron": "*/5 * * * *",
        "params": {"url": "http://127.0.0.1:9/health"},
        **fields,
    }
    return Schedule(**values)


def clean_errors(**fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        schedule(**fields).full_clean()
    return caught.value.message_dict


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"retry_backoff_base": -5.0}, "retry_backoff_base", "more than 0"),
        ({"retry_backoff_base": float("nan")}, "retry_backoff_base", "a number of seconds"),
        ({"retry_backoff_cap": float("inf")}, "retry_backoff_cap", "a number of seconds"),
        ({"retry_backoff_cap": -1.0}, "retry_backoff_cap", "more than 0"),
        ({"retry_max_attempts": 0}, "retry_max_attempts", "between 1 (no retry) and 100"),
        (
            {"retry_backoff_base": 30.0, "retry_backoff_cap": 10.0},
            "retry_backoff_cap",
            "at least the backoff base (30 s)",
        ),
        ({"cron": "0 0 31 2 *"}, "cron", "never fires"),
        ({"jitter": 604800}, "jitter", "between 0 and 86400"),
        ({"jitter": 300}, "jitter", "only 300 s apart"),
        ({"catchup_window": 10}, "catchup_window", "misfire grace (60 s)"),
        ({"max_catchup_runs": 0}, "max_catchup_runs", "between 1 and 1000"),
        ({"queue": "../../x y"}, "queue", "is no queue name"),
        ({"queue": "q" * 201}, "queue", "at most 200 characters"),
    ],
)
def test_clean_refuses_nonsense_on_its_field(fields, field, message):
    errors = clean_errors(**fields)
    assert any(message in text for text in errors.get(field, ())), errors


def test_clean_accepts_sensible_values_and_normalises_the_cron():
    accepted = schedule(
        cron="@hourly",
        jitter=120,
        catchup_window=600,
        max_catchup_runs=1,
        queue="reports:high",
        retry_max_attempts=5,
        retry_backoff_base=1.5,
        retry_backoff_cap=1.5,
    )
    accepted.full_clean()
    assert accepted.cron == "0 * * * *"


@pytest.mark.parametrize(
    "fields",
    [
        {"retry_max_attempts": 0},
        {"retry_max_attempts": 101},
        {"retry_backoff_base": -5.0},
        {"retry_backoff_base": 0.0},
        # SQLite stores a NaN as NULL; PostgreSQL keeps it, and the upper bound refuses it.
        pytest.param({"retry_backoff_base": float("nan")}, marks=pytest.mark.postgres),
        {"retry_backoff_cap": -1.0},
        {"retry_backoff_base": 10.0, "retry_backoff_cap": 5.0},
        {"jitter": 86401, "catchup_window": 100000},
        {"jitter": 600, "catchup_window": 300},
        {"catchup_window": 40 * 86400},
        {"max_catchup_runs": 0},
        {"max_catchup_runs": 1001},
    ],
)
def test_the_database_refuses_what_clean_would(fields):
    stored = schedule()
    stored.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        Schedule.objects.filter(pk=stored.pk).update(**fields)


def test_the_misfire_grace_setting_is_checked(settings):
    def errors() -> list[str]:
        return [e.id for e in checks.run_checks() if e.id == "scheduler.E004"]

    assert errors() == []
    settings.SCHEDULER_MISFIRE_GRACE = 0
    assert errors() == ["scheduler.E004"]
    settings.SCHEDULER_MISFIRE_GRACE = settings.SCHEDULER_CATCHUP_WINDOW + 1
    assert errors() == ["scheduler.E004"]
