"""Keeping secrets out of alerts: a schedule's secret parameter values (and a channel's own
secrets) are masked wherever they turn up in text, such as an error message that quotes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobs_catalog.params import MASK
from jobs_catalog.registry import registry

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
    out: list[str] = []
    for name in names:
        _collect(params.get(name), out)
    return out


def _collect(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _collect(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, out)
    elif value is not None and not isinstance(value, bool):
        text = str(value)
        if len(text) >= MIN_SECRET_LENGTH:
            out.append(text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by the mask (longest first, so a secret that
    contains another is masked whole)."""
    if not text:
        return text
    for secret in sorted(
        {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    ):
        text = text.replace(secret, MASK)
    return text
