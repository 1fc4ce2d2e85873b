"""A job's retry policy and the one backoff function every retry uses."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from jobs_catalog.errors import JobDefinitionError, RetryableError

#: Attempts in all, the first one included.
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds; the ceiling of the n-th retry's delay is base * 2**(n-1), capped.
DEFAULT_BACKOFF_BASE = 2.0
DEFAULT_BACKOFF_CAP = 300.0
#: Transient errors: worth another attempt. A bug or a validation error is not.
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, RetryableError)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt is retried.

    max_attempts: attempts in all (1 means never retry).
    backoff_base, backoff_cap: exponential backoff in seconds, see :func:`backoff_delay`.
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
        if self.max_attempts < 1:
            raise JobDefinitionError("retry policy: max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise JobDefinitionError("retry policy: backoff_base and backoff_cap must be >= 0")
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on):
            raise JobDefinitionError("retry policy: retry_on must hold exception classes")

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
