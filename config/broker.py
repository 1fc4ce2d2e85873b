"""Broker transport options, from the broker URL: one place for settings and tests."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

#: Seconds a late-acknowledged message may stay unacknowledged beyond the longest job.
VISIBILITY_MARGIN = 600
#: Redis connections (kombu's Redis transport options); see "Broker outages" in README.md.
#: Seconds a command may wait for Redis's answer: without it, a Redis that vanished without
#: closing the TCP connection (a failover, a network cut) holds a publish or an ack forever.
#: Far above the consumer's BRPOP timeout (1 s).
REDIS_SOCKET_TIMEOUT = 30.0
#: Seconds to wait for a TCP connection to Redis: the OS default is minutes.
REDIS_CONNECT_TIMEOUT = 10.0
#: Seconds between checks of an idle connection (a PING before reuse; kombu also drops a BRPOP
#: overdue by this much): a half-open consumer connection is noticed within about a minute.
REDIS_HEALTH_CHECK_INTERVAL = 25
#: Seconds between a worker's sweeps for messages left unacknowledged past the visibility
#: timeout (their worker died, or lost its connection while Redis kept them), at most; a
#: tenth of the timeout when that is shorter. kombu's default sweeps about every 100 s.
REDIS_RESTORE_SWEEP = 10


def transport_options(
    broker_url: str, data_dir: Path, max_time_limit: int, visibility_timeout: int | None = None
) -> dict:
    if broker_url.startswith("filesystem"):
        # kombu's filesystem transport: the broker that needs no server. Workers and beat
        # on one machine share these folders.
        folders = {name: data_dir / "broker" / name for name in ("queue", "processed", "control")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
            # Seconds between polls of the queue folder: the latency of the embedded broker.
            "polling_interval": 0.2,
        }
    if broker_url.startswith(("redis", "rediss", "sqs")):
        # These redeliver an unacknowledged message after the visibility timeout. With late
        # acks a running job is unacknowledged, so the timeout must outlast the longest job
        # the platform allows, or a slow job would be delivered twice.
        timeout = visibility_timeout or max_time_limit + VISIBILITY_MARGIN
        if timeout <= max_time_limit:
            raise ImproperlyConfigured(
                f"CELERY_VISIBILITY_TIMEOUT ({timeout}s) must be longer than "
                f"JOBS_MAX_TIME_LIMIT ({max_time_limit}s), or a job still running would be "
                "redelivered to another worker."
            )
        options: dict = {"visibility_timeout": timeout}
        if broker_url.startswith(("redis", "rediss")):
            options.update(
                socket_timeout=REDIS_SOCKET_TIMEOUT,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                socket_keepalive=True,
                health_check_interval=REDIS_HEALTH_CHECK_INTERVAL,
                unacked_restore_interval=max(1, min(REDIS_RESTORE_SWEEP, timeout // 10)),
                unacked_restore_throttle=1,  # every sweep scans (kombu's default: one in 10)
                # Not retry_on_timeout: a command that timed out may have run (a push would
                # then be sent twice); Celery's own retry of a publish or of the connection
                # handles the error instead.
            )
        return options
    # AMQP redelivers only when the consumer's connection closes: no timeout to size.
    return {}
