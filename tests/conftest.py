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


@pytest.fixture(autouse=True)
def _no_job_secrets_after_the_test():
    """A job run in-process leaves its secrets masked in the logs until its Celery task's
    end, which a test calling the task directly never reaches: each test starts clean."""
    yield
    from scheduler.runs import log_redaction

    log_redaction.use(None)


class SecretKeys:
    """The secret keys of a test: ``old`` is in use at first; ``use(*keys)`` changes the list."""

    def __init__(self, settings):
        from jobs_catalog.secrets import new_key

        self.settings = settings
        self.old, self.new = new_key(), new_key()
        self.use(self.old)

    def use(self, *keys: str) -> None:
        self.settings.SECRETS_ENCRYPTION_KEYS = list(keys)


@pytest.fixture
def keys(settings) -> SecretKeys:
    return SecretKeys(settings)
