"""A fix of kombu's Redis channel, applied in workers at start (``worker_init``).

The bug (kombu 5.7.0, the latest release; the same ``_connparams`` on a detached transport as
https://github.com/celery/kombu/issues/582, there from a closing fanout queue): when the broker
connection drops, Celery's consumer calls ``Connection.collect()`` and then
``Connection.release()``. ``collect()`` closes the channels, but a Redis channel waiting on
``BRPOP`` (a worker with a free pool slot) fails to close on the dead socket, and a failure
of another channel (the remote-control fanout queue) stops the loop; ``collect()`` then
detaches the transport from the connection (``transport.client = None``). ``release()``
closes that channel a second time: it now gets as far as restoring its unacknowledged
messages (a running job, a retry waiting out its countdown), which needs a new Redis
client, whose parameters are read from ``transport.client`` -> ``AttributeError: 'NoneType'
object has no attribute 'hostname'``. Not a connection error, so Celery's cleanup does not
ignore it: ``CRITICAL Unrecoverable error`` and the worker process exits.

The fix: a channel whose connection is gone raises a Redis ``ConnectionError`` when it needs
a new client, which the cleanup ignores like any other error from the dead broker. Nothing
is lost: the unacknowledged messages stay in Redis's unacked index and are delivered again
after the visibility timeout (``config.broker``), as when a worker dies (kombu does not hand
them back on reconnection: https://github.com/celery/celery/issues/1307).

Remove this once kombu fixes it: tests/faults/test_kombu_redis.py fails then.
"""

from __future__ import annotations

import functools
from typing import Any

#: Marks the patched method, so that applying twice patches once.
PATCHED = "_jobs_platform_guarded"


def guard_detached_channels() -> None:
    """Patch ``kombu.transport.redis.Channel._connparams`` (idempotent)."""
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, PATCHED, False):
        return

    @functools.wraps(original)
    def _connparams(self: Any, *args: Any, **kwargs: Any) -> dict:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError(
                "this channel's broker connection was closed: it cannot open a new one"
            )
        return original(self, *args, **kwargs)

    setattr(_connparams, PATCHED, True)
    kombu_redis.Channel._connparams = _connparams
