"""A job's context: ``ctx.progress`` is throttled (a handful of writes for thousands of
calls, the last one always kept by the flush, none without a call), ``ctx.cancelled`` asks
at most once a second, bad figures are refused; the ``cancellable`` option of a job."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from jobs_catalog import JobContext, job
from jobs_catalog import context as context_module
from jobs_catalog.context import (
    CANCEL_CHECK_EVERY,
    MESSAGE_LIMIT,
    PROGRESS_WRITES_PER_SECOND,
    Progress,
)
from jobs_catalog.definition import Job
from jobs_catalog.errors import JobCancelled, JobDefinitionError
from jobs_catalog.registry import Registry


class Clock:
    """Stands in for the ``time`` module the context reads."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Control:
    """A RunControl that counts what it is asked."""

    def __init__(self, cancelled: bool = False) -> None:
        self.reports: list[Progress] = []
        self.asked = 0
        self.cancelled = cancelled

    def report(self, progress: Progress) -> None:
        self.reports.append(progress)

    def is_cancelled(self) -> bool:
        self.asked += 1
        return self.cancelled


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(context_module, "time", fake)
    return fake


def context(control: Control | None) -> JobContext:
    return JobContext(job="tests.progress", control=control)


def test_thousands_of_reports_in_a_burst_make_one_write_and_the_flush_keeps_the_last(clock):
    control = Control()
    ctx = context(control)
    for done in range(1, 5001):
        ctx.progress(done, 5000, f"item {done}")
    assert control.reports == [Progress(1, 5000, "item 1")]  # the first is written at once
    ctx.flush_progress()
    assert control.reports[-1] == Progress(5000, 5000, "item 5000")
    assert len(control.reports) == 2
    ctx.flush_progress()  # nothing new: nothing written
    assert len(control.reports) == 2


def test_reports_over_time_are_written_at_most_a_few_times_a_second(clock):
    control = Control()
    ctx = context(control)
    # 10,000 reports over 10 seconds, one a millisecond.
    for done in range(10_000):
        ctx.progress(done, 10_000)
        clock.now += 0.001
    writes = len(control.reports)
    assert writes <= 10 * PROGRESS_WRITES_PER_SECOND + 1
    assert writes >= 10 * PROGRESS_WRITES_PER_SECOND - 1  # and it does keep reporting
    assert control.reports[-1].done < 9_999  # the last one was held back...
    ctx.flush_progress()
    assert control.reports[-1] == Progress(9_999, 10_000, "")  # ...until the flush


def test_a_report_after_a_quiet_spell_is_written_at_once(clock):
    control = Control()
    ctx = context(control)
    ctx.progress(1, 3)
    clock.now += 1.0 / PROGRESS_WRITES_PER_SECOND
    ctx.progress(2, 3)
    assert [p.done for p in control.reports] == [1, 2]
    ctx.flush_progress()
    assert len(control.reports) == 2  # written already: the flush adds nothing


def test_no_report_no_write(clock):
    control = Control()
    ctx = context(control)
    ctx.flush_progress()
    assert control.reports == [] and control.asked == 0


def test_without_a_run_history_reports_are_only_kept_on_the_context(clock):
    ctx = context(None)
    ctx.progress(3, None, "three")
    ctx.flush_progress()
    assert ctx.last_progress == Progress(3, None, "three")
    assert ctx.cancelled is False and ctx.cancel_seen is False


def test_the_message_is_cut_and_the_figures_are_plain_numbers(clock):
    control = Control()
    ctx = context(control)
    ctx.progress(Fraction(1, 2), 2, "x" * (MESSAGE_LIMIT + 50))
    [written] = control.reports
    assert written.done == 0.5 and type(written.done) is float and written.total == 2
    assert written.message == "x" * MESSAGE_LIMIT
    assert written.fraction == 0.25


@pytest.mark.parametrize(
    ("done", "total", "error"),
    [
        (-1, 10, ValueError),
        (1, -10, ValueError),
        (math.nan, 10, ValueError),
        (1, math.inf, ValueError),
        ("3", 10, TypeError),
        (True, 10, TypeError),
        (1, "ten", TypeError),
    ],
)
def test_bad_figures_are_refused_and_nothing_is_written(clock, done, total, error):
    control = Control()
    ctx = context(control)
    with pytest.raises(error, match=r"progress: (done|total) must be"):
        ctx.progress(done, total)
    assert control.reports == [] and ctx.last_progress is None
    ctx.flush_progress()
    assert control.reports == []


def test_fraction_is_unknown_without_a_total():
    assert Progress(5, None).fraction is None
    assert Progress(5, 0).fraction is None
    assert Progress(15, 10).fraction == 1.0


def test_cancelled_asks_at_most_once_a_second(clock):
    control = Control()
    ctx = context(control)
    for _ in range(1000):
        assert ctx.cancelled is False
    assert control.asked == 1
    clock.now += CANCEL_CHECK_EVERY
    control.cancelled = True
    assert ctx.cancelled is True and control.asked == 2
    # Once seen, it stays so, and nothing more is asked.
    clock.now += 10
    assert ctx.cancelled is True and ctx.cancel_seen is True and control.asked == 2


def test_cancel_seen_asks_nothing(clock):
    control = Control(cancelled=True)
    ctx = context(control)
    assert ctx.cancel_seen is False and control.asked == 0
    with pytest.raises(JobCancelled, match=r"tests\.progress: cancelled"):
        ctx.stop_if_cancelled()
    assert ctx.cancel_seen is True and control.asked == 1


def _noop() -> None:
    pass


def test_a_job_is_not_cancellable_unless_it_says_so():
    assert Job(name="tests.plain", func=_noop, title="t").cancellable is False
    registry = Registry()

    @job("tests.chunks", cancellable=True, registry=registry)
    def chunks() -> None:
        pass

    assert registry.get("tests.chunks").cancellable is True


def test_cancellable_must_be_a_bool():
    with pytest.raises(JobDefinitionError, match="cancellable must be True or False, not 'yes'"):
        Job(name="tests.plain", func=_noop, title="t", cancellable="yes")
