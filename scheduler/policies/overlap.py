"""Overlap policy: what to do with a new occurrence while the schedule's last one is active."""

from __future__ import annotations

from enum import StrEnum


class OverlapPolicy(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"


#: How the admin names each policy.
LABELS = {
    OverlapPolicy.ALLOW: "Allow: start every occurrence",
    OverlapPolicy.SKIP: "Skip while a run is still going",
    OverlapPolicy.BUFFER_ONE: "Buffer one: at most one waits for the running one",
}


class Decision(StrEnum):
    PUBLISH = "publish"
    BUFFER = "buffer"
    SKIP = "skip"


def decide(policy: str, active: int, buffered: int) -> Decision:
    """``active``: occurrences queued or running; ``buffered``: those already waiting."""
    if policy == OverlapPolicy.ALLOW or (active == 0 and buffered == 0):
        return Decision.PUBLISH
    if policy == OverlapPolicy.BUFFER_ONE and buffered == 0:
        return Decision.BUFFER
    return Decision.SKIP
