"""Servers a fault test owns: a Redis server or a PostgreSQL cluster of its own, on a free
port in a temporary directory, which the test may stop, kill and start again.

The machine's own services are never touched: only the pids started here are signalled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import ROOT, wait_for

#: Where Debian installs PostgreSQL's server binaries (initdb, pg_ctl), newest first.
POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RedisServer:
    """``redis-server`` on its own port, keeping nothing on disk (a restart comes back
    empty, as the machine's does); with ``persistent``, an append-only file written at every
    command, so a restart (even after SIGKILL) comes back with its data."""

    def __init__(self, directory: Path, port: int | None = None, persistent: bool = False) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.persistent = persistent
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        log = (self.directory / "redis.log").open("ab")
        self.popen = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes" if self.persistent else "no"),
                *("--appendfsync", "always", "--dir", str(self.directory)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: _answers(self.port), timeout, f"redis-server on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: an outage with no goodbye to the clients."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)
        wait_for(lambda: not _answers(self.port), 10, f"port {self.port} closed")

    def restart(self) -> None:
        self.kill()
        self.start()


@contextmanager
def running(server):
    """``server`` (anything with ``start()`` and ``kill()``) started, and killed at the end."""
    server.start()
    try:
        yield server
    finally:
        server.kill()


def redis_server(directory: Path):
    return running(RedisServer(directory))


def _postgres_binary(name: str) -> str | None:
    for folder in POSTGRES_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server binary as the ``postgres`` user (the server refuses to run as root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl``), trust auth."""

    def __init__(self) -> None:
        initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.pg_ctl = pg_ctl
        # Outside pytest's tmp_path: its parents are private to root, the server runs as
        # postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="pg-fault-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        _as_postgres(
            [initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"],
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            [
                *(self.pg_ctl, "-D", str(self.data), "-l", str(self.directory / "server.log")),
                *("-o", options, "-w", "-t", str(int(timeout)), "start"),
            ]
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: clients are cut off at once, as in a crash)."""
        if (self.data / "postmaster.pid").exists():
            _as_postgres([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"])

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        clause = f" TEMPLATE {template}" if template else ""
        self.execute(f"CREATE DATABASE {name}{clause}")
        return self.url(name)

    def running(self) -> bool:
        return _answers(self.port)

    def start_if_stopped(self) -> None:
        if not self.running():
            self.start()

    def migrate(self, database: str, **extra_env: str) -> None:
        """The platform's schema in ``database`` (``manage.py migrate`` in a child process)."""
        env = {**os.environ, "DATABASE_URL": self.url(database), "DATABASE_POOL": "false"}
        env.update(extra_env)
        env.setdefault("SECRET_KEY", "fault-tests-only")
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode:
            raise AssertionError(f"migrate failed:\n{done.stdout}\n{done.stderr[-3000:]}")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


#: Where Debian installs RabbitMQ's own start script (/usr/sbin/rabbitmq-server wraps it to
#: switch to the rabbitmq user, whose home holds the machine node's Erlang cookie).
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class RabbitMQNode:
    """A RabbitMQ node of the test's own: its own node name, AMQP and distribution ports,
    database, logs, config and Erlang cookie (its HOME) in ``directory``; no plugins. The
    machine's node is never addressed. A restart keeps its database: durable queues and
    persistent messages come back, as after a broker crash."""

    def __init__(self, directory: Path) -> None:
        if not RABBITMQ_SERVER.exists():
            pytest.skip(f"RabbitMQ is not installed ({RABBITMQ_SERVER} is missing)")
        self.directory = directory
        self.port, self.dist_port = free_port(), free_port()
        self.name = f"fault{self.port}@localhost"
        for folder in ("home", "mnesia", "log"):
            (directory / folder).mkdir(parents=True, exist_ok=True)
        (directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nloopback_users = none\n"
        )
        (directory / "enabled_plugins").write_text("[].\n")
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "HOME": str(self.directory / "home"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.directory / "node.pid"),
        }
        log = (self.directory / "server.log").open("ab")
        self.popen = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the Erlang VM and its helpers go with it
        )
        log.close()
        wait_for(lambda: _answers(self.port), timeout, f"RabbitMQ node {self.name}")

    def kill(self) -> None:
        """SIGKILL of the whole node: a broker crash, no goodbye to the clients."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        wait_for(lambda: not _answers(self.port), 10, f"port {self.port} closed")


def rabbitmq_node(directory: Path):
    return running(RabbitMQNode(directory))
