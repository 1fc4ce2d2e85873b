"""What a queue name may be: one rule for a job's declared queue and a schedule's override."""

from __future__ import annotations

import re
from typing import Any

#: The longest queue name accepted (AMQP allows 255 bytes; a schedule stores 200 characters).
MAX_QUEUE_NAME = 200
#: What AMQP and Redis queue names reasonably use: letters, digits, ``.``, ``-``, ``_``, ``:``.
QUEUE_NAME_PATTERN = re.compile(r"[A-Za-z0-9._:-]+")


def queue_name_problem(name: Any) -> str | None:
    """Why ``name`` is no queue name, or None when it is one."""
    if not isinstance(name, str) or not name:
        return "a queue name must be a non-empty text"
    if len(name) > MAX_QUEUE_NAME:
        return f"a queue name has at most {MAX_QUEUE_NAME} characters, not {len(name)}"
    if not QUEUE_NAME_PATTERN.fullmatch(name):
        return (
            f"{name!r} is no queue name: use letters, digits and the characters . - _ : "
            "only (no spaces or slashes)"
        )
    return None
