"""Rules the worker's claim repeats in SQL for speed, held to their one Python definition by
one table of cases each, on the database the suite runs on (PostgreSQL or SQLite):

- retry layering (run, then schedule, then job): ``scheduler.policies.retry``; the claim
  resolves ``max_attempts`` in SQL;
- the first attempt of an occurrence: ``scheduler.runs.models.first_attempt_id``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from jobs_catalog import RetryPolicy
from scheduler.policies.retry import resolve
from scheduler.runs import recording, retries
from scheduler.runs.models import JobRun

pytestmark = pytest.mark.django_db
Status = JobRun.Status
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: The run's schedule sets nothing because it has none (None: it has one that sets nothing).
NO_SCHEDULE = "no schedule"
#: Retry layering of max_attempts: (run layer, schedule layer, job layer) -> max_attempts.
MAX_ATTEMPTS = {
    (None, None, 3): 3,
    (None, NO_SCHEDULE, 3): 3,
    (None, 2, 3): 2,
    (5, 2, 3): 5,
    (4, None, 3): 4,
    (4, NO_SCHEDULE, 3): 4,
    (1, 7, 3): 1,
    (None, 7, 1): 7,
    (None, None, 1): 1,
}

_times = itertools.count()


def _run(schedule=None, **fields) -> JobRun:
    """A run of ``schedule`` at its own instant."""
    fields.setdefault("scheduled_for", T0 + timedelta(minutes=next(_times)))
    if schedule is not None:
        fields.update(schedule=schedule, periodic_task=schedule.periodic_task)
    return JobRun.objects.create(task_name="tests.touch_file", **fields)


def _fields(**fields) -> dict:
    """The fields of a start (``recording.claim``'s)."""
    return {
        "now": T0,
        "host": "w1@test",
        "pid": 1,
        "queue": "",
        "params": {},
        "run_max_attempts": None,
        "job_max_attempts": 1,
        **fields,
    }


# --- retry layering ------------------------------------------------------------------------
@pytest.mark.parametrize(("run", "schedule", "job"), list(MAX_ATTEMPTS))
def test_max_attempts_in_python(run, schedule, job):
    expected = MAX_ATTEMPTS[run, schedule, job]
    run_layer = {"retry_max_attempts": run}
    schedule_layer = None if schedule == NO_SCHEDULE else {"retry_max_attempts": schedule}
    assert resolve("max_attempts", run=run_layer, schedule=schedule_layer, job=job).value == (
        expected
    )
    policy = retries.resolve_policy(RetryPolicy(max_attempts=job), schedule_layer, run_layer)
    assert policy.max_attempts == expected


@pytest.mark.parametrize(("run", "schedule", "job"), list(MAX_ATTEMPTS))
def test_max_attempts_in_the_claim(make_schedule, run, schedule, job):
    owner = None if schedule == NO_SCHEDULE else make_schedule(retry_max_attempts=schedule)
    row = _run(owner, status=Status.QUEUED)
    fields = _fields(run_max_attempts=run, job_max_attempts=job)
    claimed = recording.claim(row.pk, **fields, check_overlap=False)
    assert claimed is not None and claimed.max_attempts == MAX_ATTEMPTS[run, schedule, job]
    assert JobRun.objects.get(pk=row.pk).max_attempts == claimed.max_attempts


def test_a_later_attempt_keeps_what_the_first_resolved(make_schedule):
    first = _run(make_schedule(retry_max_attempts=2), status=Status.RETRYING, max_attempts=2)
    later = retries.next_attempt(first, now=T0, delay=0)
    fields = _fields(run_max_attempts=9, job_max_attempts=5)
    claimed = recording.claim(later.pk, **fields, check_overlap=False)
    assert claimed is not None and (claimed.attempt, claimed.max_attempts) == (2, 2)


# --- the first attempt ---------------------------------------------------------------------
def test_the_claim_names_the_first_attempt_as_the_model_does():
    first = _run(status=Status.QUEUED, max_attempts=2)
    claimed = recording.claim(first.pk, **_fields())
    assert claimed is not None and claimed.first_attempt_id == first.first_attempt_id == first.pk
    recording.finish(first.pk, status=Status.RETRYING, now=T0)
    later = retries.next_attempt(JobRun.objects.get(pk=first.pk), now=T0, delay=0)
    claimed = recording.claim(later.pk, **_fields())
    assert claimed is not None and claimed.first_attempt_id == later.first_attempt_id == first.pk
    assert later.occurrence_id == first.pk and later.pk != first.pk
