"""The statements that record an attempt, in one place: one when it starts, one when it ends.

They run on every job, so each is a single statement (``UPDATE ... RETURNING``) and never
touches a row that is no longer where it should be: an attempt starts only from pending or
queued, and ends only from running, so a duplicate delivery starts nothing and a run
someone cancelled stays cancelled.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from scheduler.policies.overlap import OverlapPolicy
from scheduler.policies.retry import LAYERS, Layer, layer_name
from scheduler.runs import history_connection
from scheduler.runs.models import FIRST_ATTEMPT_ID_SQL, JobRun, first_attempt_id
from scheduler.schedules.models import Schedule

Status = JobRun.Status
TABLE = JobRun._meta.db_table
SCHEDULE_TABLE = Schedule._meta.db_table

#: Facts the claim reads about an attempt's schedule in the round trip the start waits for
#: anyway, by name: an SQL expression over the run's row (``{run}`` is its table). Added by a
#: room that wants the fact at every start without a query of its own (alerting: whether an
#: incident is open); handed on with the run's end in ``Claimed.facts``.
_claim_facts: dict[str, str] = {}


def add_claim_fact(name: str, sql: str) -> None:
    """Have every claim also return ``sql`` (``{run}`` names the run table) as ``name``."""
    if _claim_facts.get(name) != sql:
        _claim_facts[name] = sql
        _claim_sql.cache_clear()


@dataclass(frozen=True)
class Claimed:
    """An attempt this process now runs. ``id`` is None while its insert is in flight
    (``insert_running(wait=False)``): it is then known by ``task_id``."""

    id: int | None
    attempt: int
    max_attempts: int
    #: The id that stands for its occurrence (``scheduler.runs.models.first_attempt_id``);
    #: None with ``id``.
    first_attempt_id: int | None = None
    schedule_id: int | None = None
    periodic_task_id: int | None = None
    task_id: uuid.UUID | str | None = None
    #: The facts registered with :func:`add_claim_fact`, as read when it started.
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: JobRun) -> Claimed:
        """The claim of ``row``, read from the database."""
        return cls(
            row.pk,
            row.attempt,
            row.max_attempts,
            first_attempt_id=row.first_attempt_id,
            schedule_id=row.schedule_id,
            periodic_task_id=row.periodic_task_id,
            task_id=row.task_id,
        )


def _seconds_since(vendor: str, column: str) -> str:
    """SQL: seconds from ``column`` to the instant given as the next parameter."""
    if vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM (%s - {column}))"
    return f"(julianday(%s) - julianday({column})) * 86400.0"


def _json_param(vendor: str) -> str:
    return "CAST(%s AS jsonb)" if vendor == "postgresql" else "%s"


def _async_commit(vendor: str) -> str:
    """SQL condition (always true) that makes the statement's own transaction commit without
    waiting for its WAL flush (PostgreSQL's synchronous_commit, set for that transaction
    only). A history write is visible at once; only a database server crash could lose the
    last fraction of a second of them. It saves a disk flush on every start and end."""
    if vendor == "postgresql":
        return "set_config('synchronous_commit', 'off', true) IS NOT NULL"
    return "1 = 1"


def _db() -> BaseDatabaseWrapper:
    # One lookup of this thread's connection (each attribute of django.db.connection is one).
    return connections[DEFAULT_DB_ALIAS]


def _dt(db: BaseDatabaseWrapper, value: datetime | None) -> Any:
    if db.vendor == "postgresql":
        return value
    return db.ops.adapt_datetimefield_value(value)


def _uuid(db: BaseDatabaseWrapper, value: uuid.UUID | str) -> Any:
    field = JobRun._meta.get_field("task_id")
    return field.get_db_prep_value(value, db)


#: The overlap rule the claim's one statement applies (``scheduler.policies.overlap.decide``):
#: under ``allow`` an occurrence starts whatever else runs. Any other policy depends on what
#: runs, which the worker decides under a lock on the schedule (``runs.middleware.claim``).
_DECIDED_UNDER_LOCK = (
    f" AND NOT EXISTS (SELECT 1 FROM {SCHEDULE_TABLE} s"
    f" WHERE s.id = {TABLE}.schedule_id AND s.overlap_policy <> '{OverlapPolicy.ALLOW}')"
)
#: Each retry layer's max_attempts in the claim (``scheduler.policies.retry``): the
#: schedule's field; the run's and the job's are parameters (``%s``), given in ``LAYERS``
#: order.
_MAX_ATTEMPTS_OF = {
    Layer.RUN: "%s",
    Layer.SCHEDULE: f"(SELECT s.{layer_name('max_attempts')} FROM {SCHEDULE_TABLE} s"
    f" WHERE s.id = {TABLE}.schedule_id)",
    Layer.JOB: "%s",
}


@cache
def _claim_sql(vendor: str, check_overlap: bool) -> str:
    # max_attempts resolves in the policy's layers, the first that sets it winning; later
    # attempts keep what the first one resolved.
    max_attempts = "COALESCE(" + ", ".join(_MAX_ATTEMPTS_OF[layer] for layer in LAYERS) + ")"
    return (
        f"UPDATE {TABLE} SET status = %s, started_at = %s,"
        f" queue_wait = {_seconds_since(vendor, 'COALESCE(next_attempt_at, published_at)')},"
        " worker_host = %s, worker_pid = %s, queue = COALESCE(NULLIF(%s, ''), queue),"
        f" params = {_json_param(vendor)}, args = {_json_param(vendor)},"
        f" max_attempts = CASE WHEN attempt > 1 THEN max_attempts ELSE {max_attempts} END"
        f" WHERE id = %s AND status IN (%s, %s) AND {_async_commit(vendor)}"
        + (_DECIDED_UNDER_LOCK if check_overlap else "")
        + f" RETURNING id, attempt, max_attempts, {FIRST_ATTEMPT_ID_SQL}, schedule_id,"
        " periodic_task_id" + "".join(f", {sql.format(run=TABLE)}" for sql in _claim_facts.values())
    )


def claim(
    run_id: int,
    *,
    now: datetime,
    host: str,
    pid: int,
    queue: str,
    params: dict,
    args: list | None = None,
    run_max_attempts: int | None,
    job_max_attempts: int,
    check_overlap: bool = True,
) -> Claimed | None:
    """Mark a pending or queued attempt running, in one statement. None when it is not
    (already started or ended, cancelled, gone), or, with ``check_overlap``, when its
    schedule has an overlap policy to enforce: the caller then decides under a lock."""
    db = _db()
    given = {Layer.RUN: run_max_attempts, Layer.JOB: job_max_attempts}
    values = [
        Status.RUNNING,
        _dt(db, now),
        _dt(db, now),
        host[:255],
        pid,
        queue[:200],
        json.dumps(params, default=str),
        json.dumps(args or [], default=str),
        *(given[layer] for layer in LAYERS if layer in given),
        run_id,
        Status.PENDING,
        Status.QUEUED,
    ]
    row = _execute(db, _claim_sql(db.vendor, check_overlap), values)
    if row is None:
        return None
    fields, facts = row[:6], row[6:]
    return Claimed(*fields, facts=dict(zip(_claim_facts, facts, strict=True)))


@cache
def _insert_sql(vendor: str) -> str:
    return (
        f"INSERT INTO {TABLE} (task_name, scheduled_for, trigger, status, attempt, max_attempts,"
        " task_id, queue, params, args, created_at, started_at, worker_host, worker_pid,"
        " note, result, error_type, error_message, traceback, logs)"
        f" SELECT %s, %s, %s, %s, 1, %s, %s, %s, {_json_param(vendor)},"
        f" {_json_param(vendor)}, %s, %s, %s, %s, '', '', '', '', '', ''"
        f" WHERE {_async_commit(vendor)}"
        " ON CONFLICT (task_id) DO NOTHING RETURNING id"
    )


def insert_running(
    *,
    task_id: uuid.UUID | str,
    task_name: str,
    trigger: str,
    scheduled_for: datetime,
    now: datetime,
    host: str,
    pid: int,
    queue: str,
    params: dict,
    max_attempts: int,
    wait: bool = True,
) -> Claimed | None:
    """Insert a run no beat committed (a direct call, the command line) as it starts, in
    one statement. None when its task id already has a row: a redelivery of that message.
    With ``wait=False`` a worker sends it without waiting (a first delivery: only a
    redelivery can meet an existing row) and the attempt is known by its task id."""
    db = _db()
    values = [
        task_name[:200],
        _dt(db, scheduled_for),
        trigger,
        Status.RUNNING,
        max_attempts,
        _uuid(db, task_id),
        queue[:200],
        json.dumps(params, default=str),
        "[]",
        _dt(db, now),
        _dt(db, now),
        host[:255],
        pid,
    ]
    sql = _insert_sql(db.vendor)
    if not wait and _send(db, sql, values):
        return Claimed(None, 1, max_attempts, task_id=task_id)
    row = _execute(db, sql, values)
    if row is None:
        return None
    first = first_attempt_id(None, row[0])  # a first attempt: its own
    return Claimed(row[0], 1, max_attempts, first_attempt_id=first, task_id=task_id)


def _send(db: BaseDatabaseWrapper, sql: str, values: list[Any]) -> bool:
    """Send without waiting for the reply when this process has its own connection."""
    own = history_connection.own
    if own is None or db.in_atomic_block:
        return False
    try:
        own.send(sql, values)
    except psycopg.OperationalError:
        own.discard()
        return False
    return True


def resolve(claimed: Claimed) -> Claimed:
    """``claimed`` with its id, once an insert sent without waiting is done."""
    if claimed.id is not None:
        return claimed
    settle()
    pk = JobRun.objects.filter(task_id=claimed.task_id).values_list("pk", flat=True).first()
    return replace(claimed, id=pk, first_attempt_id=first_attempt_id(None, pk))


def _execute(
    db: BaseDatabaseWrapper, sql: str, values: list[Any], *, own_connection: bool = True
) -> tuple | None:
    """Run one statement and fetch its row: on the worker's own connection when there is
    one (outside a transaction), else on Django's. A connection found broken (the database
    restarted while the worker idled) is replaced once, outside a transaction only."""
    own = history_connection.own if own_connection else None
    if own is not None and not db.in_atomic_block:
        try:
            return own.query(sql, values)
        except psycopg.OperationalError:
            own.discard()
            return own.query(sql, values)
    for retry in (True, False):
        try:
            with db.cursor() as cursor:
                cursor.execute(sql, values)
                return cursor.fetchone()
        except (OperationalError, InterfaceError):
            if not retry or db.in_atomic_block:
                raise
            db.close()
    raise AssertionError("unreachable")


def read(sql: str, values: list[Any]) -> tuple | None:
    """The first row of ``sql``: on a worker's own connection when it has one, behind what
    this process sent there without waiting (so it sees it, in the same round trip)."""
    return _execute(_db(), sql, values)


def settle() -> None:
    """Make sure what this process sent without waiting is committed (before reading runs
    through Django's connection)."""
    if history_connection.own is not None:
        history_connection.own.settle()


@cache
def _finish_sql(vendor: str, by_task_id: bool) -> str:
    key = "task_id" if by_task_id else "id"
    return (
        f"UPDATE {TABLE} SET status = %s, finished_at = %s,"
        f" duration = {_seconds_since(vendor, 'started_at')},"
        " result = %s, error_type = %s, error_message = %s, traceback = %s, logs = %s,"
        " retry_delay = %s, next_attempt_at = %s,"
        " note = CASE WHEN %s = '' THEN note ELSE %s END"
        f" WHERE {key} = %s AND status = %s AND {_async_commit(vendor)} RETURNING id"
    )


def finish(
    run_id: int | None,
    *,
    status: str,
    now: datetime,
    result: str = "",
    error_type: str = "",
    error_message: str = "",
    traceback: str = "",
    logs: str = "",
    note: str = "",
    retry_delay: float | None = None,
    next_attempt_at: datetime | None = None,
    wait: bool = True,
    task_id: uuid.UUID | str | None = None,
) -> bool:
    """Record how a running attempt ended, in one statement. False when it was no longer
    running (cancelled meanwhile, or already ended): nothing is changed then. With
    ``wait=False`` a worker sends it without waiting for the reply (see
    ``scheduler.runs.history_connection``) and True is returned: use it when nothing depends on
    the answer. An attempt whose id is not known yet is found by ``task_id``."""
    db = _db()
    values = [
        status,
        _dt(db, now),
        _dt(db, now),
        result,
        error_type[:255],
        error_message,
        traceback,
        logs,
        retry_delay,
        _dt(db, next_attempt_at),
        note,
        note,
        run_id if run_id is not None else _uuid(db, task_id),
        Status.RUNNING,
    ]
    sql = _finish_sql(db.vendor, run_id is None)
    if not wait and _send(db, sql, values):
        return True
    return _execute(db, sql, values) is not None


@cache
def _finish_by_task_sql(vendor: str, include_reruns: bool) -> str:
    reruns = (
        f" OR occurrence_id = (SELECT id FROM {TABLE} WHERE task_id = %s AND attempt = 1)"
        if include_reruns
        else ""
    )
    return (
        f"UPDATE {TABLE} SET status = %s, finished_at = %s,"
        f" duration = {_seconds_since(vendor, 'started_at')},"
        " error_type = %s, error_message = %s"
        f" WHERE status = %s AND (task_id = %s{reruns})"
        " RETURNING id, schedule_id"
    )


def finish_by_task_id(
    task_id: str,
    *,
    status: str,
    now: datetime,
    error_type: str,
    error_message: str,
    include_reruns: bool = False,
) -> tuple[int, int | None] | None:
    """End the running attempt a Celery task id drives, from the worker's main process
    (which knows the task id only). ``include_reruns``: a plain task's message also drives
    the reruns recorded after it was redelivered. Returns (id, schedule id) or None."""
    db = _db()
    values = [
        status,
        _dt(db, now),
        _dt(db, now),
        error_type[:255],
        error_message,
        Status.RUNNING,
        _uuid(db, task_id),
    ]
    if include_reruns:
        values.append(_uuid(db, task_id))
    # Django's connection: the worker's main process never opens one of its own, which
    # the pool processes it forks would inherit.
    sql = _finish_by_task_sql(db.vendor, include_reruns)
    row = _execute(db, sql, values, own_connection=False)
    return (row[0], row[1]) if row else None


def fail_unstarted(
    run_id: int, *, now: datetime, error_type: str, error_message: str
) -> tuple[int, int | None] | None:
    """Fail a run that never started (pending or queued): no worker can run its message.
    Returns (id, schedule id), or None when it is not waiting any more."""
    db = _db()
    sql = (
        f"UPDATE {TABLE} SET status = %s, finished_at = %s, error_type = %s,"
        " error_message = %s WHERE id = %s AND status IN (%s, %s) RETURNING id, schedule_id"
    )
    values = [
        Status.FAILED,
        _dt(db, now),
        error_type[:255],
        error_message,
        run_id,
        Status.PENDING,
        Status.QUEUED,
    ]
    # Django's connection: this runs in the worker's main process (see finish_by_task_id).
    row = _execute(db, sql, values, own_connection=False)
    return (row[0], row[1]) if row else None


# --- while it runs: progress and cancellation (``scheduler.runs.progress``) ------------------
def _key(db: BaseDatabaseWrapper, run_id: int | None, task_id: uuid.UUID | str | None) -> Any:
    return run_id if run_id is not None else _uuid(db, task_id)


@cache
def _progress_sql(vendor: str, by_task_id: bool) -> str:
    key = "task_id" if by_task_id else "id"
    # A cancelled attempt still takes it: its job may be stopping at its next check.
    return (
        f"UPDATE {TABLE} SET progress = {_json_param(vendor)}"
        f" WHERE {key} = %s AND status IN (%s, %s) AND {_async_commit(vendor)} RETURNING id"
    )


def write_progress(
    run_id: int | None, *, progress: dict[str, Any], task_id: uuid.UUID | str | None = None
) -> None:
    """Store how far a running attempt got, in one statement. A worker sends it on its own
    connection without waiting for the reply, outside any transaction the job may be in (so
    it is seen at once, and stays if the job rolls back). Nothing changes once the attempt
    ended. An attempt whose id is not known yet is found by ``task_id``."""
    db = _db()
    values = [
        json.dumps(progress, default=str),
        _key(db, run_id, task_id),
        Status.RUNNING,
        Status.CANCELLED,
    ]
    sql = _progress_sql(db.vendor, run_id is None)
    own = history_connection.own
    if own is not None:
        try:
            own.send(sql, values)
        except psycopg.OperationalError:
            own.discard()
            raise
        return
    _execute(db, sql, values, own_connection=False)


def is_cancelled(run_id: int | None, *, task_id: uuid.UUID | str | None = None) -> bool:
    """Whether the attempt was cancelled (read behind what this process sent)."""
    key = "task_id" if run_id is None else "id"
    db = _db()
    sql = f"SELECT 1 FROM {TABLE} WHERE {key} = %s AND status = %s"
    return _execute(db, sql, [_key(db, run_id, task_id), Status.CANCELLED]) is not None


def keep_after_cancel(
    run_id: int | None, *, logs: str, note: str, task_id: uuid.UUID | str | None = None
) -> bool:
    """The job of a cancelled attempt stopped: keep its log lines and say so in the note.
    The status, end time and duration the cancel recorded stay. False when the attempt is
    not cancelled."""
    key = "task_id" if run_id is None else "id"
    db = _db()
    sql = (
        f"UPDATE {TABLE} SET logs = %s, note = CASE WHEN note = '' THEN %s ELSE note || %s END"
        f" WHERE {key} = %s AND status = %s AND {_async_commit(db.vendor)} RETURNING id"
    )
    values = [logs, note, f"\n{note}", _key(db, run_id, task_id), Status.CANCELLED]
    return _execute(db, sql, values) is not None
