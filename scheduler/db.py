"""Which database the platform runs on, for the few statements written per vendor."""

from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
