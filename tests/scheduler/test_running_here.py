"""Whether an attempt marked running still runs in another process of the same worker."""

from __future__ import annotations

import multiprocessing
import os

from scheduler.runs.running_here import still_running_here

NODE = "w1@host"


def _check(pid: int, answers) -> None:
    answers.put(still_running_here(NODE, pid, NODE))


def test_a_live_sibling_process_of_the_same_worker_still_runs_it():
    context = multiprocessing.get_context("fork")
    busy = context.Process(target=context.Event().wait, daemon=True)  # a pool process at work
    busy.start()
    answers = context.Queue()
    try:
        checker = context.Process(target=_check, args=(busy.pid, answers))
        checker.start()
        checker.join(10)
        assert answers.get(timeout=5) is True
    finally:
        busy.kill()
        busy.join(5)
    checker = context.Process(target=_check, args=(busy.pid, answers))  # now gone
    checker.start()
    checker.join(10)
    assert answers.get(timeout=5) is False


def test_another_worker_this_process_or_no_process_is_not_here():
    assert not still_running_here("w2@host", os.getppid(), NODE)
    assert not still_running_here(NODE, os.getpid(), NODE)  # a process taking a message is free
    assert not still_running_here(NODE, None, NODE)
    assert not still_running_here(NODE, os.getppid(), "")
    assert not still_running_here(NODE, os.getppid(), NODE)  # the parent is no sibling
