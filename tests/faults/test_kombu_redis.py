"""kombu's Redis channel after a lost connection, without a worker: the cleanup Celery does
(``collect()``, then ``release()``) of a connection whose channel holds an unacknowledged
message while it waits on BRPOP, next to a channel on a fanout queue (remote control)."""

from __future__ import annotations

import pytest
from kombu import Connection, Consumer, Exchange, Queue
from kombu.transport import redis as kombu_redis

from config.kombu_redis import guard_detached_channels
from tests.support.servers import redis_server

pytestmark = [pytest.mark.faults]


@pytest.fixture
def unpatched(monkeypatch):
    """kombu as released; the test's changes are undone afterwards."""
    original = kombu_redis.Channel._connparams
    monkeypatch.setattr(
        kombu_redis.Channel, "_connparams", getattr(original, "__wrapped__", original)
    )


def held_then_cut(tmp_path) -> Connection:
    """A connection holding one unacknowledged message and waiting for the next, whose
    Redis server was then killed."""
    with redis_server(tmp_path) as server:
        conn = Connection(server.url, transport_options={"visibility_timeout": 3600})
        queue = Queue("jobs")
        with conn.Producer() as producer:
            producer.publish({"n": 1}, routing_key="jobs", declare=[queue])
        held = []
        Consumer(
            conn, [queue], callbacks=[lambda body, m: held.append(m)], prefetch_count=2
        ).consume()
        while not held:
            conn.drain_events(timeout=5)
        control = Queue("control", Exchange("control", type="fanout"), auto_delete=True)
        Consumer(conn.channel(), [control], callbacks=[lambda body, m: None]).consume()
        held[0].channel._brpop_start()  # waiting on BRPOP for the next message
    return conn


def test_released_kombu_crashes_on_the_cleanup(tmp_path, unpatched):
    """If this fails, kombu fixed the bug: config.kombu_redis can go."""
    conn = held_then_cut(tmp_path)
    conn.collect(socket_timeout=5)
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'hostname'"):
        conn.release()


def test_with_the_guard_the_cleanup_ignores_the_dead_connection(tmp_path, unpatched):
    guard_detached_channels()
    guard_detached_channels()  # idempotent
    assert getattr(kombu_redis.Channel._connparams, "__wrapped__", None) is not None
    conn = held_then_cut(tmp_path)
    conn.collect(socket_timeout=5)
    conn.release()  # what Celery's cleanup does, ignoring connection errors only
