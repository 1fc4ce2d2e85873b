"""Keep secrets out of the run history, and its text fields bounded.

A job's secret parameters are masked in the parameter snapshot (``Job.mask``); their values
are also replaced wherever they turn up in free text the history keeps: the result summary,
the error message, the traceback and the captured log lines.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from jobs_catalog.params import MASK
from jobs_catalog.secrets import is_sealed, unseal_or_none

#: Characters kept of a result summary and of an error message.
MAX_RESULT = 2000
MAX_ERROR_MESSAGE = 2000
#: Characters kept of a traceback: its end, where the error is.
MAX_TRACEBACK = 16_000

#: Keyword names that look secret, for plain tasks (they declare no parameters): their
#: values are masked in the stored keyword arguments.
SECRET_LOOKING = re.compile(r"pass(word|wd)?|secret|token|api_?key|credential|auth", re.I)


class _BoundedRepr(reprlib.Repr):
    """``repr`` with bounded cost; secrets are replaced before any cut, so no half of one
    survives a truncation."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.maxlevel = 4
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 50
        self.maxstring = self.maxother = MAX_RESULT
        self.redactor = redactor

    def repr_str(self, x: str, level: int) -> str:
        return super().repr_str(self.redactor.text(x), level)

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception as exc:  # a broken __repr__ must not lose the run's outcome
            return f"<unrepresentable {type(x).__name__}: {type(exc).__name__}>"
        return head(self.redactor.text(text), self.maxother)


class Redactor:
    """Replaces known secret values in text. With no secrets it returns text unchanged."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    @classmethod
    def for_params(cls, params: Mapping[str, Any], secret_fields: Iterable[str]) -> Redactor:
        values: list[str] = []
        for name in secret_fields:
            if name in params:
                values.extend(secret_leaves(params[name]))
        return cls(values)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


#: The redactor of a run without secrets: changes nothing.
NO_SECRETS = Redactor()


def secret_leaves(value: Any) -> list[str]:
    """The text forms of a secret value: itself, or each item of a list or mapping; a sealed
    value is opened first (one no key here opens cannot turn up in clear here either). Flags
    are no secrets: masking every "True" would garble the text and hide nothing."""
    if is_sealed(value):
        value = unseal_or_none(value)
    if value is None or value == "" or isinstance(value, bool):
        return []
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in secret_leaves(v)]
    if isinstance(value, list | tuple | set):
        return [s for v in value for s in secret_leaves(v)]
    return [str(value)]


def summary(value: Any, redactor: Redactor) -> str:
    """A bounded ``repr`` of a job's return value (empty for None)."""
    if value is None:
        return ""
    return head(redactor.text(_BoundedRepr(redactor).repr(value)), MAX_RESULT)


def head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def mask_plain_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of a plain task, with secret-looking names masked."""
    return {
        k: (MASK if SECRET_LOOKING.search(str(k)) and v not in (None, "") else v)
        for k, v in kwargs.items()
    }
