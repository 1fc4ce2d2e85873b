"""Rules the worker's claim repeats in SQL for speed, held to their one Python definition by
one table of cases each, on the database the suite runs on (PostgreSQL or SQLite):

- overlap: ``scheduler.policies.overlap.decide``; the claim's one statement starts only what
  the policy lets start whatever runs, and leaves the rest to the lock (which calls it);
- retry layering (run, then schedule, then job): ``scheduler.policies.retry``; the claim
  resolves ``max_attempts`` in SQL;
- the first attempt of an occurrence: ``scheduler.runs.models.first_attempt_id``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from jobs_catalog import RetryPolicy
from scheduler.policies.overlap import Decision, OverlapPolicy, decide
from scheduler.policies.retry import resolve
from scheduler.runs import recording, retries
from scheduler.runs.middleware.claim import Delivery, claim_under_lock, counted_at_start
from scheduler.runs.middleware.state import RunState, Start
from scheduler.runs.models import JobRun

pytestmark = pytest.mark.django_db
Status = JobRun.Status
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALLOW, SKIP, BUFFER_ONE = OverlapPolicy.ALLOW, OverlapPolicy.SKIP, OverlapPolicy.BUFFER_ONE
PUBLISH, BUFFER = Decision.PUBLISH, Decision.BUFFER

#: The overlap policy: (policy, occurrences active, occurrences buffered) -> decision.
OVERLAP = {
    (ALLOW, 0, 0): PUBLISH,
    (ALLOW, 1, 0): PUBLISH,
    (ALLOW, 2, 1): PUBLISH,
    (SKIP, 0, 0): PUBLISH,
    (SKIP, 1, 0): Decision.SKIP,
    (SKIP, 2, 0): Decision.SKIP,
    (SKIP, 0, 1): Decision.SKIP,
    (BUFFER_ONE, 0, 0): PUBLISH,
    (BUFFER_ONE, 1, 0): BUFFER,
    (BUFFER_ONE, 2, 0): BUFFER,
    (BUFFER_ONE, 1, 1): Decision.SKIP,
    (BUFFER_ONE, 0, 1): Decision.SKIP,
}

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


# --- overlap -------------------------------------------------------------------------------
@pytest.mark.parametrize(("policy", "active", "buffered"), list(OVERLAP))
def test_overlap_in_python(policy, active, buffered):
    assert decide(policy, active, buffered) == OVERLAP[policy, active, buffered]


@pytest.mark.parametrize(("policy", "active", "buffered"), list(OVERLAP))
def test_overlap_in_the_claim(make_schedule, policy, active, buffered):
    schedule = make_schedule(overlap_policy=policy)
    for _ in range(active):
        _run(schedule, status=Status.RUNNING)
    for _ in range(buffered):
        _run(schedule, status=Status.BUFFERED)
    row = _run(schedule, status=Status.QUEUED)
    # What the worker counts on starting an attempt, looked up in the same table.
    expected = OVERLAP[policy, *counted_at_start(active, buffered)]
    claimed = recording.claim(row.pk, **_fields())  # the one statement
    if claimed is None:
        # Left to the lock (every policy but "allow", whatever the counts).
        got = claim_under_lock(
            JobRun.objects.filter(pk=row.pk), Start(**_fields()), Delivery("w1@test"), RunState()
        )
        claimed = got if isinstance(got, recording.Claimed) else None
    assert (claimed is not None) == (expected == PUBLISH)
    row.refresh_from_db()
    decision = {Status.RUNNING: PUBLISH, Status.BUFFERED: BUFFER, Status.SKIPPED: Decision.SKIP}
    assert decision[row.status] == expected


def test_a_buffered_occurrence_alone_holds_back_no_attempt_starting():
    """The worker's counts differ from beat's where nothing runs: an attempt delivered then
    starts (a later attempt of an occurrence whose successor is buffered behind it)."""
    assert counted_at_start(0, 1) == (0, 0)
    assert counted_at_start(1, 1) == (1, 1)
    assert counted_at_start(2, 0) == (2, 0)


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
