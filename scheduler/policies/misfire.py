"""What to do with occurrences that came due while beat was down or the schedule paused."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class MisfirePolicy(StrEnum):
    RUN_ONCE = "run_once"
    SKIP = "skip"
    RUN_ALL = "run_all"


#: How the admin names each policy.
LABELS = {
    MisfirePolicy.RUN_ONCE: "Run once for all missed occurrences (within the catch-up window)",
    MisfirePolicy.SKIP: "Skip to the next occurrence",
    MisfirePolicy.RUN_ALL: "Run each missed occurrence within the window (capped)",
}

#: An occurrence later than this is a misfire, not merely a beat that woke a little late
#: (``SCHEDULER_MISFIRE_GRACE`` sets the grace in force).
DEFAULT_GRACE = timedelta(seconds=60)


@dataclass
class CatchUp:
    run: list[datetime] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)


def plan(
    due: list[datetime],
    now: datetime,
    *,
    policy: str,
    window: timedelta,
    cap: int,
    grace: timedelta = DEFAULT_GRACE,
) -> CatchUp:
    """Split ``due`` (ascending scheduled times, all <= now, already limited to the catch-up
    window by the caller) into those to run and those to record as missed."""
    if not due:
        return CatchUp()
    on_time = [t for t in due if now - t <= grace]
    late = [t for t in due if now - t > grace and now - t <= window]
    if len(due) == 1 and on_time:
        return CatchUp(run=due)
    if policy == MisfirePolicy.SKIP:
        return CatchUp(run=on_time, missed=late)
    if policy == MisfirePolicy.RUN_ALL:
        keep = max(cap, 0)
        runnable = late + on_time
        chosen = runnable[-keep:] if keep else []
        return CatchUp(run=chosen, missed=runnable[: len(runnable) - len(chosen)])
    # RUN_ONCE (the default): one run stands for them all; the rest are recorded as missed.
    runnable = late + on_time
    if not runnable:
        return CatchUp()
    return CatchUp(run=runnable[-1:], missed=runnable[:-1])
