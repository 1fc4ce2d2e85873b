"""Suite-wide fixtures. Tests that need a server skip, with the reason, only when the
variable naming that server is unset; .ci/run sets them all."""

from __future__ import annotations

import os

import pytest

#: marker -> the variable that must name the server
SERVICE_VARIABLES = {"redis": "REDIS_URL", "rabbitmq": "RABBITMQ_URL"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    for item in items:
        for marker, variable in SERVICE_VARIABLES.items():
            if item.get_closest_marker(marker) and not os.environ.get(variable):
                item.add_marker(pytest.mark.skip(reason=f"{variable} is not set"))
        if item.get_closest_marker("postgres") and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="DATABASE_URL does not name PostgreSQL"))
