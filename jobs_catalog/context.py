"""What a running job is told about its run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class JobContext:
    """Passed to a job that declares a parameter annotated ``JobContext``.

    ``logger`` is the job's own logger: what it logs is kept with the run. ``attempt`` counts
    from 1 up to ``max_attempts``. ``run_id`` is the run's history row when it is known as
    the job starts (a worker writes a direct call's row alongside the run: None there).
    """

    job: str
    trigger: str = "manual"
    attempt: int = 1
    max_attempts: int = 1
    run_id: int | None = None
    scheduled_for: datetime | None = None
    #: The message headers (the scheduler's occurrence and schedule ids, ...).
    headers: dict = field(default_factory=dict)
    logger: logging.Logger = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.logger is None:
            self.logger = logging.getLogger(f"jobs.{self.job}")
