"""The admin, found by Django's autodiscovery here; its pages live in the web and alerts rooms."""

from scheduler.alerts import admin as alerts_admin  # noqa: F401
from scheduler.alerts.callbacks import admin as callbacks_admin  # noqa: F401
from scheduler.web import admin as web_admin  # noqa: F401
from scheduler.web import token_admin  # noqa: F401
