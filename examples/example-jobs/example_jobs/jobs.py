"""Example jobs: what a plugin package looks like."""

import hashlib
import hmac
from typing import Literal

from jobs_catalog import JobContext, Param, RetryPolicy, job


@job("example.greet", title="Greet someone", soft_time_limit=10, time_limit=15)
def greet(
    ctx: JobContext,
    name: str = Param(help="Who to greet", min_length=1, max_length=100),
    greeting: Literal["Hello", "Hi", "Good morning"] = "Hello",
    times: int = Param(1, ge=1, le=5, help="How many times"),
    shout: bool = False,
) -> list[str]:
    """Returns a greeting, a few times. Useful to try the platform end to end."""
    line = f"{greeting}, {name}!"
    ctx.logger.info("greeting %s %d time(s)", name, times)
    return [line.upper() if shout else line] * times


@job(
    "example.sign",
    title="Sign a message",
    retry=RetryPolicy(max_attempts=1),
)
def sign(
    message: str,
    key: str = Param(help="HMAC key", secret=True, min_length=8),
    algorithm: Literal["sha256", "sha512"] = "sha256",
) -> dict:
    """Signs ``message`` with HMAC; the key is a secret parameter and is never shown."""
    digest = hmac.new(key.encode(), message.encode(), getattr(hashlib, algorithm)).hexdigest()
    return {"algorithm": algorithm, "signature": digest}
