"""A worker process's own PostgreSQL connection for the run history's statements.

Every run writes its start and its end. A start that decides whether the job runs (a
message beat sent, a redelivery) waits for its reply. The others (a first delivery of a
direct call, an end nothing waits on) need not: they are *sent* before the task goes on or
returns, so the database has them even if the process dies a moment later, and their
replies are read before the next statement on this connection. That takes the database
round trips off a run's path. The statements are prepared once per connection (a pooler in
between must support prepared statements: PgBouncer 1.21+).

Enabled in worker processes only (``enable()``, at worker_init); the connection is opened
lazily by the process that runs tasks, never used across a fork. A job's own queries keep
using Django's connection, untouched by a reply still in flight here.

A statement sent without waiting is kept until its reply confirms it: if the connection
breaks first (the database went down), it is sent again, waiting, on the next connection.
Nothing else may be waiting to read the reply for long (the process idles between tasks), so
a thread of the process confirms it ``CONFIRM_AFTER`` seconds later, trying again through an
outage until it is written (``scheduler.runs.db_retry``). The statements sent so (an attempt's
end, a direct call's start) are idempotent: sent twice, the second changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection
from psycopg import errors as pg_errors
from psycopg.adapt import Transformer
from psycopg.pq import ConnStatus, ExecStatus

from scheduler.runs import db_retry

logger = logging.getLogger(__name__)

#: Seconds after a statement sent without waiting that its reply is read, if no other
#: statement read it first.
CONFIRM_AFTER = 1.0
#: Seconds a pool process about to exit keeps trying to confirm what it sent.
CLOSE_CONFIRM_FOR = 10.0


class OwnConnection:
    def __init__(self) -> None:
        self._conn: psycopg.Connection | None = None
        self._pid = 0
        #: Statements sent without waiting, their replies not yet read, oldest first.
        self._unconfirmed: list[tuple[str, list[Any]]] = []
        self._prepared: dict[str, bytes] = {}
        self._loader: Transformer | None = None
        # A thread pool runs several tasks in one process: one statement at a time here.
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._confirmer_pid = 0

    def query(self, sql: str, values: list[Any]) -> tuple | None:
        """Run ``sql`` and return its first row, waiting for it."""
        with self._lock:
            conn = self._connection()
            self._settle(conn)
            self._send(conn, sql, values)
            return self._first_row(conn)

    def send(self, sql: str, values: list[Any]) -> None:
        """Send ``sql`` without waiting for its reply (read before the next statement, or
        by the confirming thread)."""
        with self._lock:
            conn = self._connection()
            self._settle(conn)
            self._send(conn, sql, values)
            self._unconfirmed.append((sql, values))
        self._wake_confirmer()

    def settle(self) -> None:
        """Read the replies still in flight (so what they wrote is committed). A statement
        whose connection broke first is sent again on a new one; OperationalError when
        that fails too (the statements are kept)."""
        with self._lock:
            if self._pid != os.getpid() or not self._unconfirmed:
                return  # nothing in flight (or it is another process's)
            if self._conn is not None and _usable(self._conn):
                self._settle(self._conn)
            else:
                self._connection()  # a new connection sends them again

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)

    def _wake_confirmer(self) -> None:
        if self._confirmer_pid != os.getpid():  # none yet in this process (or forked)
            self._confirmer_pid = os.getpid()
            self._wanted = threading.Event()
            threading.Thread(
                target=self._confirm_forever, name="run-history-confirm", daemon=True
            ).start()
        self._wanted.set()

    def _confirm_forever(self) -> None:
        while True:
            self._wanted.wait()
            time.sleep(CONFIRM_AFTER)  # the next statement usually reads the reply first
            self._wanted.clear()
            try:
                db_retry.until_written(
                    self.settle,
                    deadline=db_retry.FOREVER,
                    what="a run's end sent without waiting",
                    reset=self.discard,
                )
            except Exception:  # never let the thread die: the next send wakes it again
                logger.exception("run history: confirming what was sent failed")

    def _send(self, conn: psycopg.Connection, sql: str, values: list[Any]) -> None:
        """Send ``sql`` as a prepared statement (parsed and planned once per connection:
        it runs for every job), its parameters in text format, their types inferred by the
        server; return once all of it is handed to the socket."""
        pgconn = conn.pgconn
        name = self._prepared.get(sql)
        if name is None:
            name = f"run_history_{len(self._prepared)}".encode()
            result = pgconn.prepare(name, _numbered(sql))
            if result.status != ExecStatus.COMMAND_OK:
                raise _failure(pgconn, result)
            self._prepared[sql] = name
        pgconn.send_query_prepared(name, [_text(v) for v in values])
        # The connection is in non-blocking mode: what the socket did not take yet would
        # stay in libpq's buffer, and be lost with the process.
        while pgconn.flush():
            poll = select.poll()
            poll.register(pgconn.socket, select.POLLOUT)
            poll.poll()

    def _first_row(self, conn: psycopg.Connection) -> tuple | None:
        pgconn = conn.pgconn
        row: tuple | None = None
        failed = None
        while (result := pgconn.get_result()) is not None:
            status = result.status
            if status == ExecStatus.TUPLES_OK and result.ntuples and row is None:
                loader = self._loader
                if loader is None:
                    loader = self._loader = Transformer.from_context(conn)
                loader.set_pgresult(result)
                row = loader.load_row(0, tuple)
            elif status == ExecStatus.FATAL_ERROR and failed is None:
                failed = _failure(pgconn, result)
        if failed is not None:
            raise failed
        return row

    def _settle(self, conn: psycopg.Connection) -> None:
        pgconn = conn.pgconn
        while self._unconfirmed:
            failed = None
            while (result := pgconn.get_result()) is not None:
                if result.status == ExecStatus.FATAL_ERROR and failed is None:
                    failed = result
            if pgconn.status == ConnStatus.BAD:
                # Kept: sent again on the next connection (the caller replaces this one).
                detail = _error(failed) if failed is not None else "the connection was lost"
                raise psycopg.OperationalError(detail)
            self._unconfirmed.pop(0)
            if failed is not None:  # refused by the database: sending it again cannot help
                logger.error(
                    "run history: a statement sent without waiting failed: %s", _error(failed)
                )

    def _confirm_on(self, conn: psycopg.Connection) -> None:
        """Send again, waiting, what a broken connection left unconfirmed."""
        while self._unconfirmed:
            sql, values = self._unconfirmed[0]
            self._send(conn, sql, values)
            try:
                self._first_row(conn)
            except psycopg.OperationalError:
                raise  # kept, for the next connection
            except psycopg.Error as exc:
                logger.error("run history: a statement sent again failed: %s", exc)
            self._unconfirmed.pop(0)

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and self._pid == os.getpid() and _usable(self._conn):
            return self._conn
        if self._pid != os.getpid():
            if self._conn is not None:
                # Inherited through a fork: closing it, even by garbage collection, would
                # end the session of the process that opened it. Keep it, unused.
                _inherited.append(self._conn)
            self._unconfirmed = []  # the other process's to confirm
        self._conn, self._prepared, self._loader = None, {}, None
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        conn = psycopg.Connection.connect(**params, autocommit=True)
        self._conn, self._pid = conn, os.getpid()
        self._confirm_on(conn)
        return conn

    def close(self) -> None:
        """Read the replies in flight, then end the session: for a pool process about to
        exit. Left to the exit, the socket, with replies unread, is reset; that costs the
        exit time, during which the worker's main process sees the process gone but cannot
        yet reap it, and so replaces it late. What cannot be confirmed within
        ``CLOSE_CONFIRM_FOR`` seconds (the database is down) is lost with the process."""
        if self._pid == os.getpid() and self._unconfirmed:
            with contextlib.suppress(*db_retry.CONNECTION_ERRORS):
                db_retry.until_written(
                    self.settle,
                    deadline=time.monotonic() + CLOSE_CONFIRM_FOR,
                    what="a run's end sent without waiting",
                    reset=self.discard,
                )
        with self._lock:
            conn, self._conn, self._prepared, self._loader = self._conn, None, {}, None
            if conn is not None and self._pid != os.getpid():
                _inherited.append(conn)  # another process's session: leave it alone
                conn = None
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._settle(conn)
                conn.close()
            self._unconfirmed = []

    def discard(self) -> None:
        """Drop a connection that failed (the next statement opens a new one, and sends
        again what was not confirmed on this one)."""
        with self._lock:
            conn, self._conn, self._prepared, self._loader = self._conn, None, {}, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _usable(conn: psycopg.Connection) -> bool:
    return not conn.broken and conn.pgconn.status != ConnStatus.BAD


def _numbered(sql: str) -> bytes:
    """``%s`` placeholders as PostgreSQL's ``$1, $2...``."""
    parts = sql.split("%s")
    return "".join(f"{p}${i}" if i < len(parts) else p for i, p in enumerate(parts, 1)).encode()


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (its type is inferred from the statement)."""
    kind = type(value)
    if kind is str:
        return value.encode()
    if value is None:
        return None
    if kind is bool:
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()


def _error(result: Any) -> str:
    return (result.error_message or b"").decode(errors="replace").strip()


def _failure(pgconn: Any, result: Any) -> psycopg.Error:
    """The exception for a failed statement: OperationalError when the connection is gone
    (the caller replaces it), else the error PostgreSQL reported."""
    if pgconn.status == ConnStatus.BAD:
        return psycopg.OperationalError(_error(result) or "the connection was lost")
    return pg_errors.error_from_result(result)


#: Set in worker processes on PostgreSQL; None elsewhere (statements go through Django).
own: OwnConnection | None = None
_inherited: list[psycopg.Connection] = []


def _discard_own() -> None:
    if own is not None:
        own.discard()


db_retry.also_discard(_discard_own)


def enable() -> None:
    global own
    if connection.vendor == "postgresql" and own is None and not os.environ.get("XSYNC"):
        own = OwnConnection()


def close() -> None:
    """End this process's session, if it has one (a pool process's exit)."""
    if own is not None:
        own.close()
