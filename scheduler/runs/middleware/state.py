"""What the run-history middlewares of one run share: one typed object, kept in
``RunInfo.state``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobs_catalog.middleware import Middleware, RunInfo
from scheduler.clock import Clock, get_clock
from scheduler.runs.capture import LogCapture
from scheduler.runs.recording import Claimed
from scheduler.runs.redaction import NO_SECRETS, Redactor


@dataclass(frozen=True)
class Start:
    """What an attempt's start records (the fields of ``recording.claim``)."""

    now: datetime
    host: str
    pid: int
    queue: str
    #: The parameters as kept: secret values masked.
    params: dict[str, Any]
    #: The run layer's max_attempts (a message header), and the job layer's.
    run_max_attempts: int | None
    job_max_attempts: int
    args: list[Any] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "host": self.host,
            "pid": self.pid,
            "queue": self.queue,
            "params": self.params,
            "args": self.args,
            "run_max_attempts": self.run_max_attempts,
            "job_max_attempts": self.job_max_attempts,
        }


@dataclass
class RunState:
    """One run, as the middlewares (and the plain-task recorder) see it."""

    #: ``time.monotonic()`` when the run came in: its time limits count from about here.
    began: float = field(default_factory=time.monotonic)
    #: Masks the run's secret values in text.
    redactor: Redactor = NO_SECRETS
    #: The parameters as kept, secret values masked (None until redacted).
    params: dict[str, Any] | None = None
    #: What its start recorded, to record again if a database crash lost it.
    start: Start | None = None
    #: The attempt this process runs, once claimed.
    claimed: Claimed | None = None
    #: Its schedule waits on its end (an overlap policy): the end is written before the
    #: buffered occurrence is released.
    guarded: bool = False
    #: The start, or the end, was tried again after a database outage.
    claim_retried: bool = False
    end_retried: bool = False
    capture: LogCapture | None = None
    #: The job's log lines, once the capture is over.
    logs: str = ""
    #: The status the attempt's end recorded (None: no end recorded by this process).
    ended: str | None = None
    #: A plain task's failure, as Celery reported it before the task's end.
    error: BaseException | None = None
    traceback: str = ""


_KEY = "scheduler.runs"


def state_of(run: RunInfo) -> RunState:
    """The state of ``run``, made on first use."""
    state = run.state.get(_KEY)
    if state is None:
        state = run.state[_KEY] = RunState()
    return state


class RunMiddleware(Middleware):
    """A middleware of the run history: the clock it reads, and the Celery app it
    publishes with (the current ones unless given, as tests do)."""

    def __init__(self, clock: Clock | None = None, app: Any = None):
        self._clock = clock
        self.app = app

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = get_clock()
        return self._clock
