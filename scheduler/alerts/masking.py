"""Keeping secrets out of alerts: a schedule's secret parameter values (and a channel's own
secrets) are masked wherever they turn up in text, such as an error message that quotes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobs_catalog.registry import registry
from scheduler.runs.redaction import Redactor, secret_leaves

#: Shorter values are not masked inside text (masking "1" would garble every message); a
#: secret that short is no secret.
MIN_SECRET_LENGTH = 4


def secret_values(params: Any, job_name: str) -> list[str]:
    """The values of ``params`` that must not be shown: the job's secret parameters, or every
    value when the job's code (and so its list of secrets) is not installed here."""
    if not isinstance(params, dict):
        return []
    job = registry.find(job_name)
    names = job.secret_fields if job is not None else frozenset(params)
    return [
        text
        for name in names
        for text in secret_leaves(params.get(name))
        if len(text) >= MIN_SECRET_LENGTH
    ]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by the mask (longest first, so a secret that
    contains another is masked whole)."""
    if not text:
        return text
    return Redactor(s for s in secrets if len(s) >= MIN_SECRET_LENGTH).text(text)
