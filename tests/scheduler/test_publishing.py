"""Sending beat's messages: runs committed ahead of their due time and held until then, and
publisher processes that send while beat claims the next batch (real database and broker)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app

from scheduler.beat.dispatch import Dispatcher
from scheduler.beat.entries import reconcile
from scheduler.runs.messages import Outgoing
from scheduler.runs.models import JobRun
from scheduler.runs.publisher import ProcessPublisher
from tests.scheduler.conftest import drain
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = JobRun.Status
LOOKAHEAD = timedelta(seconds=2)


def at(minute: int, second: float = 0) -> datetime:
    return datetime(2026, 6, 1, 12, minute, 0, tzinfo=UTC) + timedelta(seconds=second)


@pytest.fixture
def ahead(clock):
    return Dispatcher(current_app, clock, lookahead=LOOKAHEAD)


def test_a_run_due_within_the_lookahead_is_committed_ahead_and_sent_when_due(
    clock, ahead, make_schedule, queue_name
):
    schedule = make_schedule()
    reconcile(clock.now())
    clock.set(at(0, 57))
    assert ahead.run_due() == 0  # 12:01 is 3 s away: not yet claimed
    assert not JobRun.objects.exists()
    assert ahead.next_due() == at(0, 58)  # it wakes to claim 2 s ahead
    clock.set(at(0, 58.5))
    assert ahead.run_due() == 0
    [run] = JobRun.objects.filter(schedule=schedule)
    assert run.status == Status.PENDING and run.scheduled_for == at(1)
    assert ahead.next_due() == at(1)  # it wakes to send at the due time
    assert ahead.sweep(min_age=timedelta(0)) == 0  # held, not stale
    assert drain(queue_name, timeout=0.3) == []
    clock.set(at(1))
    assert ahead.run_due() == 1
    [(headers, _)] = drain(queue_name)
    assert headers["occurrence_id"] == run.pk and headers["scheduled_for"] == at(1).isoformat()
    run.refresh_from_db()
    assert run.status == Status.QUEUED and run.published_at == at(1)


def test_a_held_run_waits_for_its_jitter(clock, ahead, make_schedule, queue_name):
    schedule = make_schedule(jitter=50)
    reconcile(clock.now())
    due_at = schedule.periodic_task.beat_entry.due_at
    assert at(1) < due_at <= at(1, 50)
    clock.set(due_at - timedelta(seconds=1))
    ahead.run_due()
    assert JobRun.objects.filter(schedule=schedule, status=Status.PENDING).count() == 1
    clock.set(due_at - timedelta(milliseconds=1))
    assert ahead.run_due() == 0
    clock.set(due_at)
    assert ahead.run_due() == 1
    assert len(drain(queue_name)) == 1


def test_a_beat_that_died_holding_runs_loses_none(clock, ahead, make_schedule, queue_name):
    schedule = make_schedule()
    reconcile(clock.now())
    clock.set(at(0, 59))
    ahead.run_due()  # held; then this beat is gone
    clock.set(at(1, 15))
    successor = Dispatcher(current_app, clock, lookahead=LOOKAHEAD)
    assert successor.run_due() == 0  # the entry moved on: not claimed twice
    assert successor.sweep() == 1  # older than the republish age: sent by the sweep
    [(headers, _)] = drain(queue_name)
    assert headers["occurrence_id"] == JobRun.objects.get(schedule=schedule).pk


def test_closing_sends_held_runs_at_their_due_time(make_schedule, queue_name):
    class RunningClock:  # close() waits in real time: a clock that runs, from 12:00:59.5
        offset = at(0, 59.5) - datetime.now(UTC)

        def now(self):
            return datetime.now(UTC) + self.offset

    clock = RunningClock()
    make_schedule()
    reconcile(at(0, 30))
    dispatcher = Dispatcher(current_app, clock, lookahead=LOOKAHEAD)
    dispatcher.run_due()
    [run] = JobRun.objects.all()
    assert run.status == Status.PENDING
    dispatcher.close()
    run.refresh_from_db()
    assert run.status == Status.QUEUED and run.published_at >= at(1)  # not sent early
    assert len(drain(queue_name)) == 1


# --- publisher processes --------------------------------------------------------------------
def _message(run: JobRun, queue: str) -> Outgoing:
    return Outgoing(
        attempt_id=run.pk,
        task_id=run.task_id,
        task_name=run.task_name,
        scheduled_for=run.scheduled_for,
        kwargs={"n": run.pk},
        options={"queue": queue},
        headers={"attempt_id": run.pk},
    )


def _runs(n: int, offset: int = 0) -> list[JobRun]:
    return JobRun.objects.bulk_create(
        JobRun(task_name="bench.noop", scheduled_for=at(0, offset + i)) for i in range(n)
    )


@pytest.fixture
def publishers():
    made: list[ProcessPublisher] = []

    def make(processes: int = 2) -> ProcessPublisher:
        made.append(ProcessPublisher(current_app, processes))
        return made[-1]

    yield make
    for publisher in made:
        publisher.close()


def _collect_all(publisher: ProcessPublisher, expected: int) -> list[int]:
    sent: list[int] = []
    wait_for(lambda: sent.extend(publisher.collect(0.1)) or len(sent) >= expected, 20, "sends")
    return sent


def test_publisher_processes_send_every_message_once_and_report_it(publishers, queue_name):
    runs = _runs(600)
    publisher = publishers(2)
    publisher.submit([_message(r, queue_name) for r in runs])
    assert publisher.in_flight() == {r.pk for r in runs}  # nothing reported before collect
    # The burst is spread: each process was handed a share.
    assert sorted(len(ids) for ids in publisher._given.values()) == [250, 350]
    sent = _collect_all(publisher, len(runs))
    assert sorted(sent) == sorted(r.pk for r in runs)
    assert publisher.in_flight() == set()
    received = drain(queue_name)
    assert sorted(kwargs["n"] for _, kwargs in received) == sorted(r.pk for r in runs)


def test_the_dispatcher_marks_what_the_publishers_sent(clock, make_schedule, queue_name):
    for i in range(3):
        make_schedule(f"s{i}")
    reconcile(clock.now())
    publisher = ProcessPublisher(current_app, 1)
    dispatcher = Dispatcher(current_app, clock, publisher=publisher)
    try:
        clock.set(at(1))
        assert dispatcher.run_due() == 3
        wait_for(lambda: (dispatcher.mark_published(0.1), not dispatcher.busy)[1], 20, "marks")
        assert set(JobRun.objects.values_list("status", flat=True)) == {Status.QUEUED}
        assert len(drain(queue_name)) == 3
    finally:
        dispatcher.close()


def test_a_dead_publisher_is_replaced_and_its_runs_are_left_to_the_sweep(
    clock, publishers, make_schedule, queue_name
):
    publisher = publishers(1)
    [child] = publisher._children
    os.kill(child.pid, signal.SIGKILL)
    child.process.join(10)
    runs = _runs(3)
    publisher.submit([_message(r, queue_name) for r in runs])  # into a dead pipe
    publisher.collect(0.5)
    [replacement] = publisher._children
    assert replacement.pid != child.pid and replacement.process.is_alive()
    assert publisher.in_flight() == set()  # no longer claimed: the sweep may send them
    assert drain(queue_name, timeout=0.3) == []
    later = _runs(2, offset=10)
    publisher.submit([_message(r, queue_name) for r in later])
    assert sorted(_collect_all(publisher, 2)) == sorted(r.pk for r in later)


def test_publishers_exit_when_beat_is_gone(publishers):
    publisher = publishers(2)
    for child in publisher._children:
        child.conn.close()  # what beat's death looks like from the other end
    for child in publisher._children:  # neither holds the other's pipe open
        child.process.join(10)
        assert child.process.exitcode == 0
