"""The alert channels by kind: email, webhook, Sentry (see :mod:`.base` for the interface)."""

from __future__ import annotations

from scheduler.alerts.channels.base import Channel, DeliveryError
from scheduler.alerts.channels.email import EmailChannel
from scheduler.alerts.channels.sentry import SentryChannel
from scheduler.alerts.channels.webhook import WebhookChannel
from scheduler.alerts.models import AlertChannel

CHANNELS: dict[str, Channel] = {
    AlertChannel.Kind.EMAIL: EmailChannel(),
    AlertChannel.Kind.WEBHOOK: WebhookChannel(),
    AlertChannel.Kind.SENTRY: SentryChannel(),
}

__all__ = ["CHANNELS", "Channel", "DeliveryError", "channel_for", "takes"]


def channel_for(config: AlertChannel) -> Channel:
    return CHANNELS[config.kind]


def takes(config: AlertChannel, kind: str, event: str) -> bool:
    """Whether the channel takes alerts of this kind and event (Sentry takes failures only;
    see its module)."""
    channel = CHANNELS.get(config.kind)
    if channel is None:
        return False
    return (channel.kinds is None or kind in channel.kinds) and (
        channel.events is None or event in channel.events
    )
