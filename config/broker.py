"""Broker transport options, from the broker URL: one place for settings and tests."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

#: Seconds a late-acknowledged message may stay unacknowledged beyond the longest job.
VISIBILITY_MARGIN = 600


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
        return {"visibility_timeout": timeout}
    # AMQP redelivers only when the consumer's connection closes: no timeout to size.
    return {}
