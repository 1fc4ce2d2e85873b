"""Retry layering, pure: no database, no Django settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.policies.retry import (
    LAYERS,
    RUN_HEADERS,
    Choice,
    Layer,
    above_job,
    layer_name,
    resolve,
)


def test_the_layers_run_then_schedule_then_job():
    assert LAYERS == (Layer.RUN, Layer.SCHEDULE, Layer.JOB)
    assert RUN_HEADERS == ("retry_max_attempts", "retry_backoff_base", "retry_backoff_cap")
    assert layer_name("backoff_cap") == "retry_backoff_cap"


@pytest.mark.parametrize(
    ("run", "schedule", "job", "expected"),
    [
        (None, None, 3, Choice(3, Layer.JOB)),
        ({}, {"retry_max_attempts": None}, 3, Choice(3, Layer.JOB)),
        (None, {"retry_max_attempts": 2}, 3, Choice(2, Layer.SCHEDULE)),
        ({"retry_max_attempts": 5}, {"retry_max_attempts": 2}, 3, Choice(5, Layer.RUN)),
        ({"retry_max_attempts": 1}, None, 3, Choice(1, Layer.RUN)),
        # A value is taken as given: checking it is the caller's (the policy's rules).
        ({"retry_max_attempts": "7"}, None, 3, Choice("7", Layer.RUN)),
        (None, None, None, None),
    ],
)
def test_a_setting_comes_from_the_first_layer_that_sets_it(run, schedule, job, expected):
    assert resolve("max_attempts", run=run, schedule=schedule, job=job) == expected


def test_what_the_run_and_the_schedule_set_replaces_the_job_setting_by_setting():
    run = {"retry_backoff_base": 0.5, "retry_max_attempts": None}
    schedule = {"retry_max_attempts": 2, "retry_backoff_base": 9, "retry_backoff_cap": None}
    assert above_job(run, schedule) == {
        "max_attempts": Choice(2, Layer.SCHEDULE),
        "backoff_base": Choice(0.5, Layer.RUN),
    }
    assert above_job(None, None) == {}
    assert above_job({"trigger": "beat"}, {}) == {}  # other names are no layer's settings


def test_the_policy_imports_nothing_of_django():
    code = (
        "import sys, scheduler.policies.retry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'jobs_catalog')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert loaded.strip() == "[]"
