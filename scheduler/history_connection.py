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
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection
from psycopg import errors as pg_errors
from psycopg.adapt import Transformer
from psycopg.pq import ConnStatus, ExecStatus

logger = logging.getLogger(__name__)


class OwnConnection:
    def __init__(self) -> None:
        self._conn: psycopg.Connection | None = None
        self._pid = 0
        self._pending = 0
        self._prepared: dict[str, bytes] = {}
        self._loader: Transformer | None = None
        # A thread pool runs several tasks in one process: one statement at a time here.
        self._lock = threading.Lock()

    def query(self, sql: str, values: list[Any]) -> tuple | None:
        """Run ``sql`` and return its first row, waiting for it."""
        with self._lock:
            conn = self._connection()
            self._settle(conn)
            self._send(conn, sql, values)
            return self._first_row(conn)

    def send(self, sql: str, values: list[Any]) -> None:
        """Send ``sql`` without waiting for its reply (read before the next statement)."""
        with self._lock:
            conn = self._connection()
            self._settle(conn)
            self._send(conn, sql, values)
            self._pending += 1

    def settle(self) -> None:
        """Read the replies still in flight (so what they wrote is committed)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._settle(self._conn)

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
        while self._pending:
            self._pending -= 1
            while (result := conn.pgconn.get_result()) is not None:
                if result.status == ExecStatus.FATAL_ERROR:
                    logger.error("run history: a run's end was not recorded: %s", _error(result))

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and self._pid == os.getpid() and not self._conn.broken:
            return self._conn
        if self._conn is not None and self._pid != os.getpid():
            # Inherited through a fork: closing it, even by garbage collection, would end
            # the session of the process that opened it. Keep it, unused.
            _inherited.append(self._conn)
        self._conn, self._pending, self._prepared, self._loader = None, 0, {}, None
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        conn = psycopg.Connection.connect(**params, autocommit=True)
        self._conn, self._pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Read the replies in flight, then end the session: for a pool process about to
        exit. Left to the exit, the socket, with replies unread, is reset; that costs the
        exit time, during which the worker's main process sees the process gone but cannot
        yet reap it, and so replaces it late."""
        with self._lock:
            conn, self._conn, self._prepared, self._loader = self._conn, None, {}, None
            if conn is not None and self._pid != os.getpid():
                _inherited.append(conn)  # another process's session: leave it alone
                conn = None
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._settle(conn)
                conn.close()
            self._pending = 0

    def discard(self) -> None:
        """Drop a connection that failed (the next statement opens a new one)."""
        with self._lock:
            conn, self._conn, self._pending, self._prepared = self._conn, None, 0, {}
            self._loader = None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                conn.close()


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


def enable() -> None:
    global own
    if connection.vendor == "postgresql" and own is None and not os.environ.get("XSYNC"):
        own = OwnConnection()


def close() -> None:
    """End this process's session, if it has one (a pool process's exit)."""
    if own is not None:
        own.close()
