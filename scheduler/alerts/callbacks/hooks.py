"""Recording completion callbacks as occurrences end, heard through the run events.

Cheap by design, as it runs in every job's process: whether a run has a callback (its
request's URL, its schedule's channel) is read with its start, in the statement the worker
makes anyway (:func:`scheduler.runs.events.read_at_start`), so the end of a run without one
costs no query. A run with one costs a read of its row (which also commits a worker's end
still in flight, so the task sending the callback reads the end) and an insert. An end
announced without those facts (the reaper's, a cancel) reads them in one query.

The targets are those the run had when it started: a channel picked while it ran applies
from the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.alerts.callbacks import tasks
from scheduler.alerts.models import AlertPolicy, CallbackDelivery
from scheduler.clock import get_clock
from scheduler.runs import events as run_events
from scheduler.runs.models import JobRun, RunRequest

Target = CallbackDelivery.Target
#: The facts read with every start (``facts`` of a run's end): its callback URL and its
#: schedule's callback channel, or None.
URL_FACT = "callback_url"
CHANNEL_FACT = "callback_channel"
#: Statuses that end an occurrence: every final one but "retrying" (another attempt follows;
#: a lost attempt that is rerun is announced by nobody).
ENDS = frozenset(JobRun.FINISHED) - {JobRun.Status.RETRYING}


def fact_sql() -> dict[str, str]:
    """The facts as SQL over a run's row (``{run}`` names its table): two primary-key reads."""
    run = "{run}"
    return {
        URL_FACT: f"(SELECT r.callback_url FROM {RunRequest._meta.db_table} r"
        f" WHERE r.run_id = COALESCE({run}.occurrence_id, {run}.id) AND r.callback_url <> '')",
        CHANNEL_FACT: f"(SELECT p.callback_channel_id FROM {AlertPolicy._meta.db_table} p"
        f" WHERE p.schedule_id = {run}.schedule_id)",
    }


def targets_of(run_id: int) -> tuple[str | None, int | None]:
    """(callback URL, callback channel id) of the run ``run_id``, read now."""
    table = JobRun._meta.db_table
    facts = [sql.format(run=table) for sql in fact_sql().values()]
    row = run_events.read_now(f"SELECT {', '.join(facts)} FROM {table} WHERE id = %s", [run_id])
    return (row[0], row[1]) if row else (None, None)


def on_run_finished(
    sender: Any,
    run: JobRun,
    run_id: int,
    schedule_id: int | None,
    status: str,
    facts: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    if status not in ENDS:
        return
    facts = facts or {}
    if URL_FACT in facts and CHANNEL_FACT in facts:
        url, channel_id = facts[URL_FACT], facts[CHANNEL_FACT]
    else:
        url, channel_id = targets_of(run_id)
    if url or channel_id is not None:
        tasks.enqueue_after_commit(record(run, status, url, channel_id))


def record(run: JobRun, status: str, url: str | None, channel_id: int | None) -> list[int]:
    """Record the deliveries of ``run``'s end to its targets; the ids of those never tried
    (an end announced twice is recorded once)."""
    now = get_clock().now()
    # Reading the row (its occurrence) commits first what the worker sent without waiting.
    common = {
        "run_id": run.pk,
        "occurrence_id": run.first_attempt_id,
        "run_status": status,
        "created_at": now,
    }
    rows = []
    if url:
        rows.append(CallbackDelivery(**common, target=Target.URL, url=url))
    if channel_id is not None:
        rows.append(CallbackDelivery(**common, target=Target.CHANNEL, channel_id=channel_id))
    CallbackDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return list(
        CallbackDelivery.objects.filter(run_id=run.pk, attempts=0).values_list("pk", flat=True)
    )
