"""Fixtures of the end-to-end tests: the platform the real processes share (see
tests.support.platform) and a sender on its broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from config.broker import transport_options
from tests.support.platform import Platform, new_platform


@pytest.fixture
def platform(tmp_path) -> Platform:
    return new_platform(tmp_path)


@pytest.fixture
def client_app(platform, monkeypatch):
    """A sender on the platform's broker (the test process's own may be another)."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    url = platform.env["CELERY_BROKER_URL"]
    app = Celery("test-client", broker=url, set_as_current=False)
    app.conf.broker_transport_options = transport_options(
        url, Path(platform.env["DATA_DIR"]), max_time_limit=3600
    )
    app.conf.task_serializer = "json"
    yield app
    app.close()
