"""The callback URL a run may name (``RunRequest.callback_url``), checked when the run is asked
for: an http(s) URL, without credentials, whose host the outbound destination policy does not
refuse by its name or literal address (``JOBS_HTTP_ALLOW`` / ``JOBS_HTTP_DENY``, as for the
HTTP job), and a signing key to sign it with. The address a name resolves to is checked again
when the callback is sent (``scheduler.alerts.callbacks``).
"""

from __future__ import annotations

from django.conf import settings

from jobs_catalog.builtin.http_destinations import url_problem
from scheduler.runs.models import RunRequest

#: The longest callback URL a run may name.
MAX_LENGTH = RunRequest._meta.get_field("callback_url").max_length
#: Why no callback URL is taken while callbacks cannot be signed.
UNSIGNED_PROBLEM = "callbacks are off here: CALLBACK_SIGNING_SECRET is not set"


def check_callback_url(url: str) -> str | None:
    """What is wrong with ``url`` as a run's callback, said without quoting it (it may hold
    a token); None when it may be taken. No DNS lookup: fit for a request's validation."""
    if not settings.CALLBACK_SIGNING_SECRET:
        return UNSIGNED_PROBLEM
    if len(url) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return url_problem(url)
