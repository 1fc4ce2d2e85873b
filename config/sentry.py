"""sentry-sdk for every process (web, worker, beat), set up by the settings when
``SENTRY_DSN`` is set.

The ``before_send`` hook is named by dotted path (``SENTRY_BEFORE_SEND``) and imported at the
first event rather than here: settings are read before Django's apps are loaded, and config/
imports nothing from the apps.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from django.utils.module_loading import import_string
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

Event = dict[str, Any]


class DottedHook:
    """A ``before_send(event, hint)`` named by dotted path, imported at its first call.

    An unimportable path raises there, and sentry-sdk then drops the event: an event that
    may hold a job's secret values is never sent unmasked (``manage.py check`` names the
    path first).
    """

    def __init__(self, path: str):
        self.path = path
        self._hook: Any = None

    def __call__(self, event: Event, hint: dict[str, Any]) -> Event | None:
        if self._hook is None:
            self._hook = import_string(self.path)
        return self._hook(event, hint)


def init(dsn: str, *, environment: str, traces_sample_rate: float, before_send: str) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        before_send=DottedHook(before_send),
    )
