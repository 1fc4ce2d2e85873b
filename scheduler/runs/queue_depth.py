"""How many messages wait in each queue the platform sends to, asked of the broker.

A passive declare answers with the queue's message count on every transport the platform
supports (AMQP, Redis and the filesystem broker through kombu's virtual channel). A queue the
broker does not know yet has no messages; a broker that cannot be reached within the
timeout gives ``None`` for every queue, so a page that shows depths never hangs on it.
The answer is cached for a few seconds, for pages reloaded by many people at once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from celery import current_app
from django.core.cache import cache
from kombu import Connection

from jobs_catalog.models import JobDefinition
from scheduler.schedules.models import Schedule

logger = logging.getLogger(__name__)

CACHE_KEY = "scheduler:queue-depths"
CACHE_SECONDS = 10
TIMEOUT = 1.0


@dataclass(frozen=True)
class Depths:
    #: queue -> messages waiting; None when the broker could not be asked.
    queues: dict[str, int | None]
    error: str = ""


def known_queues() -> list[str]:
    """The default queue and every queue a job or schedule names."""
    names = {current_app.conf.task_default_queue or "celery"}
    names.update(JobDefinition.objects.exclude(queue="").values_list("queue", flat=True))
    names.update(
        Schedule.objects.exclude(queue="").values_list("queue", flat=True).distinct().order_by()
    )
    return sorted(names)


def ask_broker(queues: list[str], timeout: float = TIMEOUT, url: str | None = None) -> Depths:
    """The depths of ``queues`` on the platform's broker (or the one at ``url``)."""
    try:
        with Connection(url) if url else current_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            out: dict[str, int | None] = {}
            for name in queues:
                channel = conn.channel()
                try:
                    out[name] = channel.queue_declare(queue=name, passive=True).message_count
                except conn.connection_errors:
                    raise  # some transports connect only now (Redis): the broker is away
                except conn.channel_errors:  # the broker has no such queue (yet)
                    out[name] = 0
                finally:
                    # AMQP closes a channel that failed a declare itself.
                    with contextlib.suppress(Exception):
                        channel.close()
            return Depths(out)
    except Exception as exc:
        logger.warning("queue depths: broker not asked (%s)", type(exc).__name__)
        return Depths(dict.fromkeys(queues), error=type(exc).__name__)


def depths() -> Depths:
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    result = ask_broker(known_queues())
    cache.set(CACHE_KEY, result, CACHE_SECONDS)
    return result
