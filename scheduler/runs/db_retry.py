"""Writing the run history through a database outage: a statement that fails on a broken
connection is tried again, after a growing pause, on a fresh connection, until it is
written or a deadline passes. Only a connection error takes this path: the healthy one
costs nothing more.

A job's soft time limit may fire while its end waits here: the job is over by then, so it
is ignored and the wait goes on (the hard limit bounds it: callers set their deadline
before it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from billiard.exceptions import SoftTimeLimitExceeded
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: What a database outage raises (on the worker's own connection, or Django's).
CONNECTION_ERRORS = (psycopg.OperationalError, OperationalError, InterfaceError)
#: The first pause after a failure, doubled after each one up to the longest.
FIRST_PAUSE = 0.25
LONGEST_PAUSE = 5.0
#: No deadline: for what must be kept until it is written.
FOREVER = math.inf
#: Seconds a run's start is tried again (at most half a job's soft time limit) before the
#: worker gives its message back to the broker.
START_RETRY_FOR = 30.0
#: Seconds before a job's hard time limit (which kills the process) at which writing its
#: end stops being tried.
END_RETRY_MARGIN = 2.0


#: Called first by :func:`fresh_connections`: connections of the run history's own (the
#: worker's history connection adds its discard here).
_discards: list[Callable[[], None]] = []


def also_discard(discard: Callable[[], None]) -> None:
    """Have :func:`fresh_connections` call ``discard`` too."""
    if discard not in _discards:
        _discards.append(discard)


def fresh_connections() -> None:
    """Drop this thread's connections, so the next statement opens new ones (what the
    worker's own connection sent without waiting and was not confirmed is kept)."""
    for discard in _discards:
        discard()
    db = connections[DEFAULT_DB_ALIAS]
    if not db.in_atomic_block:
        try:
            db.close()
        except CONNECTION_ERRORS:  # closing a broken connection can fail: it is gone anyway
            db.connection = None


def until_written(
    write: Callable[[], T],
    *,
    deadline: float,
    what: str,
    reset: Callable[[], None] = fresh_connections,
) -> T:
    """``write()``'s result, trying again after a connection error until ``deadline`` (a
    ``time.monotonic()`` instant); past it, the last error is raised."""
    pause = FIRST_PAUSE
    failures = 0
    while True:
        try:
            return write()
        except CONNECTION_ERRORS as exc:
            failures += 1
            if time.monotonic() + pause > deadline:
                logger.error("run history: %s not written, giving up: %s", what, exc)
                raise
            if failures == 1:
                logger.warning("run history: %s not written (%s); trying again", what, exc)
            reset()
        except SoftTimeLimitExceeded:
            continue  # the job is over: its outcome is what remains to be written
        _pause(pause)
        pause = min(pause * 2, LONGEST_PAUSE)


def numbered(write: Callable[[int], T]) -> Callable[[], T]:
    """``write`` told the number of each try (1 for the first), for :func:`until_written`: a
    try after a failure may find what an earlier one committed before its reply was lost."""
    tries = 0

    def once() -> T:
        nonlocal tries
        tries += 1
        return write(tries)

    return once


def _pause(seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(left)
