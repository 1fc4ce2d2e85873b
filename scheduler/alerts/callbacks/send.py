"""Sending one completion callback: a JSON POST signed as alert webhooks are
(``X-Jobs-Signature: t=<unix time>,v1=<hex>``, HMAC-SHA256 of ``"<unix time>." + body``; see
:mod:`scheduler.alerts.channels.webhook`), to an address the outbound destination policy
accepts (``JOBS_HTTP_ALLOW`` / ``JOBS_HTTP_DENY``, checked on the address the host resolves
to, which is the one connected to), within a timeout, and no redirect followed.

A 2xx answer is success. A connection failure, a timeout, 5xx, 408 and 429 are tried again;
a refused destination, a redirect and any other answer fail at once: another try would meet
the same. Headers: ``X-Jobs-Event: run.<status>``, ``X-Jobs-Delivery: <id>`` (the same on
every attempt, for a receiver to drop a repeat) and the signature.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from urllib3.exceptions import HTTPError

from jobs_catalog.builtin.http import TRANSIENT_STATUSES
from jobs_catalog.builtin.http_destinations import (
    DestinationRefusedError,
    checked_request,
    reason_of,
    url_problem,
)
from scheduler.alerts.callbacks import body
from scheduler.alerts.channels import base
from scheduler.alerts.channels.base import DeliveryError
from scheduler.alerts.channels.webhook import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    encode,
    sign,
    slack_body,
)
from scheduler.alerts.masking import scrub
from scheduler.alerts.models import AlertChannel, CallbackDelivery

USER_AGENT = "jobs-platform-callbacks/1"
DELIVERY_HEADER = "X-Jobs-Delivery"
Target = CallbackDelivery.Target


@dataclass(frozen=True)
class Destination:
    url: str
    secret: str
    timeout: float
    slack: bool = False


def destination_of(delivery: CallbackDelivery) -> Destination:
    """Where ``delivery`` goes and how it is signed; a final :class:`DeliveryError` when it
    cannot go anywhere."""
    if delivery.target == Target.CHANNEL:
        channel = delivery.channel
        if channel is None or not channel.enabled:
            raise DeliveryError("the callback channel was deleted or disabled", final=True)
        if channel.kind != AlertChannel.Kind.WEBHOOK or not channel.url:
            raise DeliveryError("the callback channel is not a webhook with a URL", final=True)
        slack = channel.webhook_format == AlertChannel.Format.SLACK
        return Destination(channel.url, channel.signing_secret, channel.timeout, slack)
    if not settings.CALLBACK_SIGNING_SECRET:
        raise DeliveryError("CALLBACK_SIGNING_SECRET is not set: nothing to sign with", final=True)
    return Destination(delivery.url, settings.CALLBACK_SIGNING_SECRET, settings.CALLBACK_TIMEOUT)


def timeout_of(delivery: CallbackDelivery) -> float:
    channel = delivery.channel
    if delivery.target == Target.CHANNEL:
        return channel.timeout if channel is not None else 0.0
    return settings.CALLBACK_TIMEOUT


def safe_reason(exc: BaseException, delivery: CallbackDelivery) -> str:
    """Why an attempt failed, fit to record and show: the URL's path and query (where a
    token would be) and the signing secrets masked."""
    if delivery.channel is not None:
        secrets = base.secrets_of(delivery.channel)
    else:
        parts = urlsplit(delivery.url)
        secrets = [delivery.url, parts.path, parts.query, settings.CALLBACK_SIGNING_SECRET]
    text = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
    return scrub(text, [s for s in secrets if s and s != "/"])[:1000]


def post(delivery: CallbackDelivery) -> dict[str, Any]:
    """One attempt at ``delivery``: the fields to record when it was taken; raises
    :class:`DeliveryError` (``final`` when trying again cannot help)."""
    target = destination_of(delivery)
    where = f"callback to {urlsplit(target.url).hostname or '?'}"
    problem = url_problem(target.url)
    if problem:
        raise DeliveryError(f"{where}: the URL {problem}", final=True)
    payload = delivery.payload or _store_body(delivery)
    data = encode(slack_body(body.as_alert(payload)) if target.slack else payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: payload["event"],
        DELIVERY_HEADER: str(delivery.pk),
    }
    if target.secret:
        headers[SIGNATURE_HEADER] = sign(target.secret, int(time.time()), data)
    deadline = time.monotonic() + target.timeout
    try:
        with checked_request("POST", target.url, headers, data, deadline) as response:
            status = response.status
    except DestinationRefusedError as exc:
        raise DeliveryError(f"{where} refused: {exc}", final=True) from None
    except (HTTPError, OSError) as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {reason_of(exc)}") from None
    except ValueError as exc:  # a malformed JOBS_HTTP_ALLOW / JOBS_HTTP_DENY
        raise DeliveryError(f"{where} cannot be checked: {exc}", final=True) from None
    if 200 <= status < 300:
        return {"response_status": status}
    if 300 <= status < 400:
        raise DeliveryError(
            f"{where} answered HTTP {status}, a redirect: not followed",
            final=True,
            response_status=status,
        )
    transient = status >= 500 or status in TRANSIENT_STATUSES
    raise DeliveryError(
        f"{where} answered HTTP {status}", final=not transient, response_status=status
    )


def _store_body(delivery: CallbackDelivery) -> dict[str, Any]:
    payload = body.build(delivery)
    fields: dict[str, Any] = {"payload": payload}
    if delivery.channel is not None:
        fields["channel_name"] = delivery.channel.name
    CallbackDelivery.objects.filter(pk=delivery.pk).update(**fields)
    delivery.payload = payload
    return payload
