"""Sending beat's messages to the broker: in beat's own process, or from publisher processes.

Building and sending a Celery message is most of beat's CPU time at scale, and it holds the
interpreter lock, so a thread cannot overlap it with the database work of claiming the next
batch. Publisher processes (forked by beat, ``SCHEDULER_PUBLISHERS`` of them) can: beat
commits a batch, hands its messages over a pipe, and claims the next while they are sent.

A publisher reports back the runs it sent; beat marks those published. A run handed over but
never reported (the publisher died, the broker refused) stays ``pending`` and the sweep
publishes it again, so a crash anywhere loses nothing; the worker drops a second delivery.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Iterable
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from celery import Celery
from celery.utils.saferepr import saferepr
from django.db import connections

from jobs_catalog.secrets import mask_sealed
from scheduler.runs.messages import Outgoing

logger = logging.getLogger(__name__)

#: Messages handed to a publisher process at a time: small enough to spread a burst over
#: every publisher, large enough that the pipe costs little.
CHUNK = 250
#: Seconds a closing beat waits for its publishers to send what they were given.
CLOSE_TIMEOUT = 10.0


class Publisher(Protocol):
    def submit(self, messages: list[Outgoing]) -> None:
        """Send ``messages`` (now, or soon from another process)."""

    def collect(self, timeout: float = 0.0) -> list[int]:
        """Runs (ids) sent since the last call, waiting up to ``timeout`` for the first."""

    def in_flight(self) -> set[int]:
        """Runs handed over and not yet reported: the sweep must leave them alone."""

    def close(self) -> None: ...


def send(app: Celery, producer: Any, message: Outgoing) -> None:
    app.send_task(
        message.task_name,
        args=message.args,
        kwargs=message.kwargs,
        # Celery's own repr (shown by events and monitoring) would show the sealed token.
        kwargsrepr=saferepr(mask_sealed(message.kwargs), app.amqp.kwargsrepr_maxsize),
        task_id=str(message.task_id),
        producer=producer,
        headers=message.headers,
        **message.options,
    )


def send_all(app: Celery, messages: Iterable[Outgoing], sent: list[int]) -> None:
    """Send ``messages`` over one producer, appending each run's id to ``sent`` once sent
    (so what went out before an error is known)."""
    with app.producer_or_acquire() as producer:
        for message in messages:
            send(app, producer, message)
            sent.append(message.attempt_id)


class InlinePublisher:
    """Sends in the calling process (the web process, a worker, beat on SQLite)."""

    def __init__(self, app: Celery):
        self.app = app
        self._sent: list[int] = []

    def submit(self, messages: list[Outgoing]) -> None:
        send_all(self.app, messages, self._sent)

    def collect(self, timeout: float = 0.0) -> list[int]:
        sent, self._sent = self._sent, []
        return sent

    def in_flight(self) -> set[int]:
        return set()

    def close(self) -> None:
        pass


class ProcessPublisher:
    """Hands messages to forked publisher processes, spreading them over all of them."""

    def __init__(self, app: Celery, processes: int):
        if processes < 1:
            raise ValueError("ProcessPublisher needs at least one process")
        self.app = app
        self._context = multiprocessing.get_context("fork")
        self._children: list[_Child] = []
        for _ in range(processes):  # one by one: each child closes the pipes made before it
            self._children.append(self._start())
        self._given: dict[int, set[int]] = {}  # child pid -> run ids handed over
        self._late: list[int] = []  # reported while closing
        self._closing = False

    def _start(self) -> _Child:
        parent_end, child_end = self._context.Pipe()
        # The child closes beat's ends of every pipe, or it would never see beat go away.
        beat_ends = [parent_end, *(c.conn for c in self._children)]
        process = self._context.Process(
            target=_serve,
            args=(child_end, beat_ends, self.app),
            name="beat-publisher",
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Child(process, parent_end)

    def submit(self, messages: list[Outgoing]) -> None:
        for start in range(0, len(messages), CHUNK):
            chunk = messages[start : start + CHUNK]
            child = min(self._children, key=lambda c: len(self._given.get(c.pid, ())))
            try:
                child.conn.send(chunk)
            except (BrokenPipeError, OSError):
                logger.error("beat publisher %s is gone; the sweep will send its runs", child.pid)
                self._replace(child)
                continue
            self._given.setdefault(child.pid, set()).update(m.attempt_id for m in chunk)

    def collect(self, timeout: float = 0.0) -> list[int]:
        sent, self._late = self._late, []
        ready = wait([c.conn for c in self._children], timeout) if self._given else []
        for child in list(self._children):
            if child.conn in ready:
                sent.extend(self._read(child))
        return sent

    def _read(self, child: _Child) -> list[int]:
        sent: list[int] = []
        try:
            while child.conn.poll():
                ok, failed, error = child.conn.recv()
                self._given.get(child.pid, set()).difference_update(ok + failed)
                sent.extend(ok)
                if failed:
                    logger.error(
                        "beat publisher could not send %d run(s), the sweep will: %s",
                        len(failed),
                        error,
                    )
        except (EOFError, OSError):
            if not self._closing:
                logger.error("beat publisher %s died; the sweep will send its runs", child.pid)
                self._replace(child)
        return sent

    def in_flight(self) -> set[int]:
        return set().union(*self._given.values()) if self._given else set()

    def close(self) -> None:
        """Let every publisher send what it was given, then stop it; what they report
        meanwhile is returned by the next :meth:`collect`."""
        self._closing = True
        for child in self._children:
            with contextlib.suppress(BrokenPipeError, OSError):
                child.conn.send(None)  # send what you have, then exit
        for child in self._children:
            child.process.join(CLOSE_TIMEOUT)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            self._late.extend(self._read(child))
            child.conn.close()
        self._children = []
        self._given.clear()

    def _replace(self, child: _Child) -> None:
        self._given.pop(child.pid, None)
        child.conn.close()
        if child.process.is_alive():
            child.process.kill()
        child.process.join()
        self._children[self._children.index(child)] = self._start()


class _Child:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection):
        self.process = process
        self.conn = conn

    @property
    def pid(self) -> int:
        return self.process.pid or 0


#: Database connections inherited from beat, kept referenced so that they are never
#: finalized here: closing one would end beat's own session on the shared socket.
_inherited: list[Any] = []


def _serve(conn: Connection, beat_ends: list[Connection], app: Celery) -> None:
    """A publisher process: send each chunk beat hands over, report what was sent. It exits
    when beat says so or goes away (the pipe closes), never on a signal of its own: beat's
    shutdown tells it to finish what it was given first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for end in beat_ends:
        end.close()
    _set_aside_database_connections()
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        sent: list[int] = []
        error = ""
        try:
            send_all(app, chunk, sent)
        except Exception as exc:  # reported to beat; the sweep sends them later
            error = f"{type(exc).__name__}: {exc}"
        failed = [m.attempt_id for m in chunk[len(sent) :]]
        try:
            conn.send((sent, failed, error))
        except (BrokenPipeError, OSError):
            return


def _set_aside_database_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            _inherited.append(connection.connection)
            connection.connection = None
