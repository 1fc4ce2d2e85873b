"""What a running job is told about its run, and how it reports back (progress, cancellation)."""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from jobs_catalog.errors import JobCancelled

#: At most this many progress writes per second per run (the last report is always kept).
PROGRESS_WRITES_PER_SECOND = 4
#: A cancellation is looked up at most once per this many seconds.
CANCEL_CHECK_EVERY = 1.0
#: A progress message is cut to this many characters.
MESSAGE_LIMIT = 200


def _amount(name: str, value: object) -> float:
    """``value`` as stored (JSON: no NaN or infinity), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"progress: {name} must be a number, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"progress: {name} must be a finite number, 0 or more, not {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


@dataclass(frozen=True)
class Progress:
    """How far a run got: ``done`` of ``total`` (None: unknown), with a short message."""

    done: float
    total: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        """0..1, or None when the total is unknown (or zero)."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def to_dict(self) -> dict[str, object]:
        return {"done": self.done, "total": self.total, "message": self.message}


class RunControl(Protocol):
    """Where a context sends progress and asks about cancellation (the run history sets one
    on every recorded run; a run outside it has none, and reports go nowhere)."""

    def report(self, progress: Progress) -> None:
        """Store ``progress`` (called at most ``PROGRESS_WRITES_PER_SECOND`` times a second,
        and once more with the last report when the run ends)."""

    def is_cancelled(self) -> bool:
        """Whether someone cancelled the run (called at most once per
        ``CANCEL_CHECK_EVERY`` seconds)."""


@dataclass
class JobContext:
    """Passed to a job that declares a parameter annotated ``JobContext``.

    ``logger`` is the job's own logger: what it logs is kept with the run. ``attempt`` counts
    from 1 up to ``max_attempts``. ``run_id`` is the run's history row when it is known as
    the job starts (a worker writes a direct call's row alongside the run: None there).

    A long job reports how far it got with :meth:`progress` (cheap: call it per item) and
    checks :attr:`cancelled` between chunks, or calls :meth:`stop_if_cancelled`.
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
    #: Set by the run history; None outside it (progress is then only kept here).
    control: RunControl | None = field(default=None, repr=False)
    #: The last progress reported, written or not.
    last_progress: Progress | None = field(default=None, repr=False)
    _written_at: float = field(default=float("-inf"), repr=False)
    _unwritten: bool = field(default=False, repr=False)
    _checked_at: float = field(default=float("-inf"), repr=False)
    _cancelled: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.logger is None:
            self.logger = logging.getLogger(f"jobs.{self.job}")

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report that ``done`` of ``total`` units are done (``total`` None: unknown).

        Writes are throttled to a few per second; the last report is written when the run
        ends, so the final figure is always kept.
        """
        done = _amount("done", done)
        total = _amount("total", total) if total is not None else None
        self.last_progress = Progress(done, total, str(message)[:MESSAGE_LIMIT])
        self._unwritten = True
        if self.control is None:
            return
        now = time.monotonic()
        if now - self._written_at >= 1.0 / PROGRESS_WRITES_PER_SECOND:
            self._written_at = now
            self._unwritten = False
            self.control.report(self.last_progress)

    def flush_progress(self) -> None:
        """Write the last report if the throttle held it back (the run history calls this
        when the run ends)."""
        if self._unwritten and self.control is not None and self.last_progress is not None:
            self._unwritten = False
            self._written_at = time.monotonic()
            self.control.report(self.last_progress)

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled (admin, API): stop cleanly between chunks."""
        if self._cancelled or self.control is None:
            return self._cancelled
        now = time.monotonic()
        if now - self._checked_at >= CANCEL_CHECK_EVERY:
            self._checked_at = now
            self._cancelled = bool(self.control.is_cancelled())
        return self._cancelled

    @property
    def cancel_seen(self) -> bool:
        """Whether :attr:`cancelled` has answered True (asks nothing: for the run history,
        which must not add a query to a run that never looked)."""
        return self._cancelled

    def stop_if_cancelled(self) -> None:
        """Raise :class:`~jobs_catalog.errors.JobCancelled` when the run was cancelled."""
        if self.cancelled:
            raise JobCancelled(f"{self.job}: cancelled")
