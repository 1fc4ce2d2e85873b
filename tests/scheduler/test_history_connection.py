"""The worker's own connection for run-history statements, on real PostgreSQL: a run's end
sent without waiting is committed once settled, a failed statement is reported, and a
connection broken under it is replaced."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import connection
from django.utils import timezone

from scheduler.runs import history_connection, recording
from scheduler.runs.history_connection import OwnConnection, _numbered
from scheduler.runs.models import JobRun

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status
#: What a claim says of the worker; the same for every claim here.
WORKER = {"host": "h", "pid": 1, "queue": "", "params": {}, "run_max_attempts": None}


@pytest.fixture
def own(monkeypatch):
    instance = OwnConnection()
    monkeypatch.setattr(history_connection, "own", instance)
    yield instance
    instance.discard()


def test_placeholders_are_numbered():
    assert _numbered("a = %s AND b IN (%s, %s)") == b"a = $1 AND b IN ($2, $3)"


def test_an_end_sent_without_waiting_is_committed_once_settled(own):
    now = timezone.now()
    run = JobRun.objects.create(
        task_name="t", scheduled_for=now, status=Status.RUNNING, started_at=now
    )
    assert recording.finish(run.pk, status=Status.SUCCEEDED, now=now, result="r", wait=False)
    recording.settle()
    run.refresh_from_db()
    assert (run.status, run.result, run.duration) == ("succeeded", "r", 0.0)
    # The next statement on the connection reads the reply first: no mix-up of answers.
    claimed = recording.claim(run.pk, now=now, **WORKER, job_max_attempts=1)
    assert claimed is None


def test_statements_are_prepared_once_per_connection(own):
    # Parsed and planned once per connection: what is waited for (a claim) as much as what
    # is only sent (an end).
    now = timezone.now()
    for _ in range(3):
        run = JobRun.objects.create(task_name="t", scheduled_for=now, status=Status.QUEUED)
        assert recording.claim(run.pk, now=now, **WORKER, job_max_attempts=1) is not None
        assert recording.finish(run.pk, status=Status.SUCCEEDED, now=now, wait=False)
    uses = own.query(
        "SELECT array_agg(generic_plans + custom_plans ORDER BY statement)"
        " FROM pg_prepared_statements WHERE statement LIKE %s",
        ["UPDATE scheduler_jobrun SET status = $1, %"],
    )
    assert uses == ([3, 3],)


def test_closing_confirms_what_was_sent_and_ends_the_session(own):
    # What a pool process does as it exits.
    now = timezone.now()
    run = JobRun.objects.create(
        task_name="t", scheduled_for=now, status=Status.RUNNING, started_at=now
    )
    assert recording.finish(run.pk, status=Status.SUCCEEDED, now=now, wait=False)
    pid = own._conn.info.backend_pid
    own.close()
    assert own._conn is None
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    deadline = time.monotonic() + 5
    while _session_exists(pid) and time.monotonic() < deadline:  # ends as it reads the close
        time.sleep(0.01)
    assert not _session_exists(pid)
    assert own.query("SELECT 1", []) == (1,)  # a later statement opens a new session


def test_closing_after_a_fork_leaves_the_parents_session_open(own):
    own.query("SELECT 1", [])
    conn = own._conn
    own._pid = -1  # as a forked process sees the connection it inherited
    own.close()
    assert own._conn is None and not conn.closed
    assert conn in history_connection._inherited
    history_connection._inherited.remove(conn)
    conn.close()


def _session_exists(backend_pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend_pid])
        return cursor.fetchone() is not None


def test_a_failing_statement_sent_without_waiting_is_logged(own, caplog):
    own.send("SELECT 1 / %s::int", [0])
    with caplog.at_level(logging.ERROR):
        own.settle()
    assert "sent without waiting failed" in caplog.text and "division by zero" in caplog.text
    assert own.query("SELECT %s::int + 1", [1]) == (2,)  # and the connection goes on


def test_a_connection_broken_under_it_is_replaced(own):
    now = timezone.now()
    run = JobRun.objects.create(task_name="t", scheduled_for=now, status=Status.QUEUED)
    own.query("SELECT 1", [])
    with connection.cursor() as cursor:  # the database ends the session (a restart would)
        cursor.execute("SELECT pg_terminate_backend(%s)", [own._conn.info.backend_pid])
    claimed = recording.claim(run.pk, now=now, **WORKER, job_max_attempts=2)
    assert claimed is not None and claimed.max_attempts == 2


def test_an_end_sent_without_waiting_is_kept_when_the_connection_breaks(own, monkeypatch):
    """The session ends before the end's reply was read: the end is sent again, and the
    confirming thread does it without any other statement."""
    monkeypatch.setattr(history_connection, "CONFIRM_AFTER", 0.05)
    now = timezone.now()
    run = JobRun.objects.create(
        task_name="t", scheduled_for=now, status=Status.RUNNING, started_at=now
    )
    own.query("SELECT 1", [])
    backend = own._conn.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    assert recording.finish(run.pk, status=Status.SUCCEEDED, now=now, wait=False)
    deadline = time.monotonic() + 10
    while own.unconfirmed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert own.unconfirmed == 0
    assert JobRun.objects.get(pk=run.pk).status == Status.SUCCEEDED
    assert own._conn.info.backend_pid != backend  # on a new session
