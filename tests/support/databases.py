"""A database of the test's own on the PostgreSQL server DATABASE_URL names: created empty, so
a test can migrate it the way a deployment does, and dropped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def _execute(server_url: str, statement: sql.Composed) -> None:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)


@contextmanager
def scratch_database(url: str, label: str = "scratch") -> Iterator[str]:
    """The URL of a new, empty database beside the one ``url`` names (same server and user)."""
    parts = urlsplit(url)
    base = parts.path.lstrip("/") or "postgres"
    name = f"{base[:40]}_{label}_{uuid.uuid4().hex[:8]}"
    server = urlunsplit(parts._replace(path="/postgres"))
    _execute(server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        # FORCE: a process that outlived its test must not keep the database alive.
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        _execute(server, drop.format(sql.Identifier(name)))
