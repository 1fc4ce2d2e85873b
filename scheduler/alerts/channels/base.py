"""The one tiny interface every alert channel implements."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from scheduler.alerts.masking import scrub
from scheduler.alerts.messages import Alert
from scheduler.alerts.models import AlertChannel


class DeliveryError(Exception):
    """The channel could not deliver; the message says why (no secrets in it). ``final``:
    trying again cannot help (the destination is refused, the receiver said no), so it is
    not retried; ``fields``: what to record with the failure (the receiver's status)."""

    def __init__(self, message: str, *, final: bool = False, **fields: Any):
        super().__init__(message)
        self.final = final
        self.fields = fields


class Channel(Protocol):
    #: Events and kinds this channel takes; None: all.
    kinds: ClassVar[frozenset[str] | None]
    events: ClassVar[frozenset[str] | None]

    def send(self, alert: Alert, config: AlertChannel) -> None:
        """Deliver ``alert`` or raise :class:`DeliveryError` (or any exception)."""


def secrets_of(config: AlertChannel) -> list[str]:
    """The channel's secret values, and the parts of them an error message may quote (a
    webhook URL's path and query hold its token; a DSN's user part is its key)."""
    values = config.secret_values()
    for value in (config.url, config.sentry_dsn):
        if value:
            parts = urlsplit(value)
            values += [p for p in (parts.path, parts.query, parts.username) if p and p != "/"]
    return values


def safe_reason(exc: BaseException, config: AlertChannel) -> str:
    """Why a delivery failed, fit to record and show: the channel's secrets masked."""
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DeliveryError) else str(exc)
    return scrub(text, secrets_of(config))[:1000]
