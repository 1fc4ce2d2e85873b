"""The alert channels by kind: email, webhook, Sentry (see :mod:`.base` for the interface)."""

from __future__ import annotations

from scheduler.alert_models import AlertChannel
from scheduler.alerts.channels.base import Channel, DeliveryError
from scheduler.alerts.channels.email import EmailChannel
from scheduler.alerts.channels.sentry import SentryChannel
from scheduler.alerts.channels.webhook import WebhookChannel
from scheduler.alerts.messages import Alert

CHANNELS: dict[str, Channel] = {
    AlertChannel.Kind.EMAIL: EmailChannel(),
    AlertChannel.Kind.WEBHOOK: WebhookChannel(),
    AlertChannel.Kind.SENTRY: SentryChannel(),
}

__all__ = ["CHANNELS", "Channel", "DeliveryError", "accepts", "channel_for"]


def channel_for(config: AlertChannel) -> Channel:
    return CHANNELS[config.kind]


def accepts(config: AlertChannel, alert: Alert) -> bool:
    """Whether the channel takes this alert (Sentry takes failures only; see its module)."""
    channel = CHANNELS.get(config.kind)
    if channel is None:
        return False
    return (channel.kinds is None or alert.kind in channel.kinds) and (
        channel.events is None or alert.event in channel.events
    )
