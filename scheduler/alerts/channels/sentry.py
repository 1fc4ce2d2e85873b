"""Sentry through sentry-sdk: a failure incident becomes an error event tagged with the job,
the schedule and the run, fingerprinted per schedule so its events group into one issue.

Only failures go here (opened and reminders): missed and too-long runs Sentry Crons finds by
itself from the check-ins (:mod:`scheduler.alerts.checkins`), and a recovery shows there as
an ``ok`` check-in. Each channel may name its own DSN (a secret); empty uses ``SENTRY_DSN``.

The event is built by a sentry-sdk client (so it has the SDK's shape and processing) and
sent synchronously by the alert task, so its delivery record says whether Sentry took it.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import sentry_sdk
import urllib3
from django.conf import settings
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sentry_sdk.utils import BadDsn, Dsn

from scheduler.alerts.channels.base import DeliveryError, secrets_of
from scheduler.alerts.masking import scrub
from scheduler.alerts.messages import Alert
from scheduler.alerts.models import AlertChannel, Incident

CLIENT_NAME = "jobs-platform-alerts/1"
_http = urllib3.PoolManager(num_pools=2, retries=False)
_lock = threading.Lock()
_capturing: dict[str, tuple[sentry_sdk.Client, _Keep]] = {}
_async: dict[str, sentry_sdk.Client] = {}


class _Keep(Transport):
    """Keeps what the client would send, for us to send (and see the answer)."""

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def dsn_of(config: AlertChannel) -> str:
    dsn = config.sentry_dsn or settings.SENTRY_DSN
    if not dsn:
        raise DeliveryError("no Sentry DSN: set one on the channel or SENTRY_DSN")
    return dsn


def validate_dsn(dsn: str) -> None:
    Dsn(dsn)  # raises BadDsn


def _options(dsn: str) -> dict[str, Any]:
    return {
        "dsn": dsn,
        "default_integrations": False,
        "auto_enabling_integrations": False,
        "integrations": [],
        "environment": getattr(settings, "SENTRY_ENVIRONMENT", None) or "production",
        "send_client_reports": False,
    }


def async_client(dsn: str) -> sentry_sdk.Client:
    """A client per DSN sending in the background (sentry-sdk's own queue and thread): for
    check-ins, which must never hold up a run."""
    with _lock:
        client = _async.get(dsn)
        if client is None:
            client = _async[dsn] = sentry_sdk.Client(**_options(dsn))
        return client


def send_now(dsn: str, event: dict[str, Any], timeout: float = 10.0) -> str:
    """Build ``event`` with the SDK and POST it to Sentry; raise if Sentry does not take it.
    Returns the event id."""
    with _lock:
        pair = _capturing.get(dsn)
        if pair is None:
            try:
                transport = _Keep(_options(dsn))
            except BadDsn as exc:
                raise DeliveryError(f"invalid Sentry DSN: {exc}") from None
            pair = _capturing[dsn] = (
                sentry_sdk.Client(**_options(dsn), transport=transport),
                transport,
            )
        client, keep = pair
        event_id = client.capture_event(dict(event))
        envelopes, keep.envelopes = keep.envelopes, []
    if event_id is None or not envelopes:
        raise DeliveryError("sentry-sdk dropped the event")
    auth = Dsn(dsn).to_auth(CLIENT_NAME)
    for envelope in envelopes:
        try:
            response = _http.request(
                "POST",
                auth.get_api_url(),
                body=envelope.serialize(),
                headers={
                    "Content-Type": "application/x-sentry-envelope",
                    "X-Sentry-Auth": auth.to_header(),
                    "User-Agent": CLIENT_NAME,
                },
                timeout=urllib3.Timeout(total=timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(f"Sentry at {auth.host}: {type(exc).__name__}") from None
        if not 200 <= response.status < 300:
            raise DeliveryError(f"Sentry at {auth.host} answered HTTP {response.status}")
    return event_id


def fingerprint(schedule_id: Any, kind: str) -> list[str]:
    """One issue per schedule (and kind), whatever the error text."""
    return ["scheduled-job", str(kind), str(schedule_id)]


def event_for(alert: Alert) -> dict[str, Any]:
    schedule = alert.schedule or {}
    run = alert.run or {}
    incident = alert.incident or {}
    tags = {
        "job": schedule.get("job"),
        "schedule": schedule.get("name"),
        "schedule_id": schedule.get("id"),
        "run_id": run.get("id") or _run_id_of(alert),
        "incident_id": incident.get("id"),
        "alert_event": alert.event,
    }
    message = f"{alert.title}: {alert.error}" if alert.error else alert.title
    return {
        "level": "error" if alert.kind == Incident.Kind.FAILED else "info",
        "logger": "scheduler.alerts",
        "message": message[:8192],
        "tags": {k: str(v) for k, v in tags.items() if v not in (None, "")},
        "fingerprint": fingerprint(schedule.get("id", "test"), alert.kind),
        "extra": {
            "summary": alert.summary,
            "error": alert.error,
            "links": alert.links,
            "run": run,
            "incident": incident,
        },
    }


def _run_id_of(alert: Alert) -> str | None:
    url = alert.links.get("run", "")
    parts = [p for p in url.split("/") if p.isdigit()]
    return parts[-1] if parts else None


class SentryChannel:
    kinds: ClassVar[frozenset[str] | None] = frozenset({Incident.Kind.FAILED, "test"})
    events: ClassVar[frozenset[str] | None] = frozenset({"opened", "reminder", "test"})

    def send(self, alert: Alert, config: AlertChannel) -> None:
        dsn = dsn_of(config)
        try:
            send_now(dsn, event_for(alert), timeout=config.timeout)
        except DeliveryError as exc:
            raise DeliveryError(scrub(str(exc), [*secrets_of(config), dsn])) from None
