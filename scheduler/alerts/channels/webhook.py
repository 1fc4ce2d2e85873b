"""Webhook: a JSON POST of the alert (or a Slack-compatible body), with a timeout, no redirects
followed, and a signature the receiver can check.

Signature: ``X-Jobs-Signature: t=<unix time>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256(signing secret, ``"<unix time>." + body``). A receiver recomputes it over the raw
body, compares in constant time, and refuses old timestamps (replays). Without a signing
secret no signature is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import urllib3

from scheduler.alerts.channels.base import DeliveryError, secrets_of
from scheduler.alerts.channels.email import LINK_LABELS
from scheduler.alerts.masking import scrub
from scheduler.alerts.messages import Alert
from scheduler.alerts.models import AlertChannel

SIGNATURE_HEADER = "X-Jobs-Signature"
EVENT_HEADER = "X-Jobs-Event"
USER_AGENT = "jobs-platform-alerts/1"

_http = urllib3.PoolManager(num_pools=4, retries=False)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = 300) -> bool:
    """What a receiver does (and the tests do): check the signature and its age."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: Alert) -> dict[str, Any]:
    text = f"*{_slack_escape(alert.headline)}*\n{_slack_escape(alert.summary)}"
    if alert.error:
        text += f"\n```{_slack_escape(alert.error)}```"
    links = " · ".join(
        f"<{url}|{LINK_LABELS.get(name, name)}>" for name, url in alert.links.items()
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    return {"text": f"{alert.headline}: {alert.summary}", "blocks": blocks}


def encode(body: dict[str, Any]) -> bytes:
    """The bytes of a JSON body, as signed and sent."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def render(alert: Alert, config: AlertChannel) -> bytes:
    body = (
        slack_body(alert) if config.webhook_format == AlertChannel.Format.SLACK else alert.to_dict()
    )
    return encode(body)


class WebhookChannel:
    kinds: ClassVar[frozenset[str] | None] = None
    events: ClassVar[frozenset[str] | None] = None

    def send(self, alert: Alert, config: AlertChannel) -> None:
        if not config.url:
            raise DeliveryError("the channel has no webhook URL")
        body = render(alert, config)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: f"{alert.kind}.{alert.event}",
        }
        if config.signing_secret:
            headers[SIGNATURE_HEADER] = sign(config.signing_secret, int(time.time()), body)
        host = urlsplit(config.url).hostname or "?"
        try:
            response = _http.request(
                "POST",
                config.url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=config.timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}", secrets_of(config))
            raise DeliveryError(f"webhook at {host}: {reason}") from None
        if not 200 <= response.status < 300:
            raise DeliveryError(f"webhook at {host} answered HTTP {response.status}")
