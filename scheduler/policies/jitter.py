"""Stable jitter: one schedule gets the same offset every time, so many schedules on the same
minute spread out while each keeps a steady rhythm."""

from __future__ import annotations

import hashlib
from datetime import timedelta


def jitter_offset(key: int | str, max_seconds: int) -> timedelta:
    """An offset in [0, max_seconds) seconds, fixed for ``key``, with millisecond grain."""
    if max_seconds <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
    millis = int.from_bytes(digest, "big") % (max_seconds * 1000)
    return timedelta(milliseconds=millis)
