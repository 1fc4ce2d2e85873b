"""A job's retry policy and the one backoff function every retry uses."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from jobs_catalog.errors import JobDefinitionError, RetryableError

#: Attempts in all, the first one included.
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds; the ceiling of the n-th retry's delay is base * 2**(n-1), capped.
DEFAULT_BACKOFF_BASE = 2.0
DEFAULT_BACKOFF_CAP = 300.0
#: Transient errors: worth another attempt. A bug or a validation error is not.
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, RetryableError)
#: The most attempts a policy may ask for: past this, retrying is hiding a broken job.
MAX_ATTEMPTS = 100
#: Seconds; the longest backoff base or cap (a retry a day later is a new run, not a retry).
MAX_BACKOFF = 86400.0


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def policy_problems(max_attempts: Any, backoff_base: Any, backoff_cap: Any) -> dict[str, str]:
    """What is wrong with these settings, by name (``max_attempts``, ``backoff_base``,
    ``backoff_cap``); empty when they make a policy. The one rule every layer is held to: a
    job's declaration, a schedule's fields, and the worker resolving them."""
    problems: dict[str, str] = {}
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool):
        problems["max_attempts"] = f"must be a whole number, not {max_attempts!r}"
    elif not 1 <= max_attempts <= MAX_ATTEMPTS:
        problems["max_attempts"] = (
            f"must be between 1 (no retry) and {MAX_ATTEMPTS}, not {max_attempts}"
        )
    for name, value in (("backoff_base", backoff_base), ("backoff_cap", backoff_cap)):
        if not _is_number(value) or not math.isfinite(value):
            problems[name] = f"must be a number of seconds, not {value!r}"
        elif not 0 < value <= MAX_BACKOFF:
            problems[name] = (
                f"must be more than 0 and at most {MAX_BACKOFF:g} seconds, not {value:g}"
            )
    if not problems.keys() & {"backoff_base", "backoff_cap"} and backoff_cap < backoff_base:
        problems["backoff_cap"] = (
            f"must be at least the backoff base ({backoff_base:g} s), not {backoff_cap:g}"
        )
    return problems


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt is retried.

    max_attempts: attempts in all (1 means never retry), at most ``MAX_ATTEMPTS``.
    backoff_base, backoff_cap: exponential backoff in seconds, see :func:`backoff_delay`;
        0 < base <= cap <= ``MAX_BACKOFF``.
    jitter: full jitter (a uniform delay between 0 and the ceiling) so that many jobs
        failing together do not retry together.
    retry_on: exception classes that are retried; anything else fails at once.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = field(default=DEFAULT_RETRY_ON)

    def __post_init__(self) -> None:
        problems = policy_problems(self.max_attempts, self.backoff_base, self.backoff_cap)
        if not isinstance(self.jitter, bool):
            problems["jitter"] = f"must be True or False, not {self.jitter!r}"
        retry_on = self.retry_on
        if isinstance(retry_on, type):  # one class given bare
            retry_on = (retry_on,)
        if not isinstance(retry_on, tuple | list | frozenset | set) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
        ):
            problems["retry_on"] = f"must be a tuple of exception classes, not {retry_on!r}"
        if problems:
            raise JobDefinitionError(
                "retry policy: " + "; ".join(f"{name} {text}" for name, text in problems.items())
            )
        object.__setattr__(self, "retry_on", tuple(retry_on))

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before the attempt after ``attempt`` (1-based) failed."""
        return backoff_delay(
            attempt, base=self.backoff_base, cap=self.backoff_cap, jitter=self.jitter, rand=rand
        )

    def to_dict(self) -> dict:
        return {
            "max_attempts": self.max_attempts,
            "backoff_base": self.backoff_base,
            "backoff_cap": self.backoff_cap,
            "jitter": self.jitter,
            "retry_on": [f"{t.__module__}.{t.__qualname__}" for t in self.retry_on],
        }


NO_RETRY = RetryPolicy(max_attempts=1)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: bool,
    rand: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with optional full jitter: ``min(cap, base * 2**(attempt-1))``,
    scaled by a uniform random factor in [0, 1) when ``jitter`` is on."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    return rand() * ceiling if jitter else ceiling
