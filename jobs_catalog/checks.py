"""``manage.py check`` reports plugins that failed to load and refused jobs (as warnings:
one broken plugin must not stop the platform), and refuses a malformed HTTP destination
policy or malformed secret keys."""

from __future__ import annotations

from typing import Any

from django.core import checks

from jobs_catalog.builtin.http_destinations import configured_rules
from jobs_catalog.registry import registry
from jobs_catalog.secrets import SecretError, keyring

_IDS = {
    "import": "jobs_catalog.W001",
    "duplicate": "jobs_catalog.W002",
    "limit": "jobs_catalog.W003",
}
_HINTS = {
    "import": "Fix the plugin or uninstall it; run `manage.py jobs list` for the traceback.",
    "duplicate": "Job names are global: rename one of the two jobs.",
    "limit": "Lower the job's time limit or raise JOBS_MAX_TIME_LIMIT.",
}


@checks.register("jobs_catalog")
def plugin_problems(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Warning(str(problem), hint=_HINTS[problem.kind], id=_IDS[problem.kind])
        for problem in registry.problems
    ]


@checks.register("jobs_catalog")
def http_destination_policy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        configured_rules()
    except ValueError as exc:
        return [checks.Error(str(exc), id="jobs_catalog.E001")]
    return []


@checks.register("jobs_catalog")
def secret_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A malformed SECRETS_ENCRYPTION_KEYS is refused at start, not at the first secret."""
    try:
        keyring()
    except SecretError as exc:
        return [checks.Error(str(exc), id="jobs_catalog.E002")]
    return []
