"""How long the fault matrix's outages and loads last: ``FAULTS_SCALE`` is ``ci`` (the
suite's default, short) or ``full`` (the lengths the matrix was specified at). No Django
import: ``bench.faults`` reads it before any settings exist."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    #: Seconds a server stays down.
    outage: float
    #: Seconds a job that is cut in the middle runs.
    job: float
    #: Schedules firing every minute, and for how many minutes, in the load row.
    load_schedules: int
    load_minutes: int


SCALES = {
    "ci": Scale(outage=3, job=4, load_schedules=300, load_minutes=2),
    "full": Scale(outage=30, job=20, load_schedules=2000, load_minutes=3),
}


def scale() -> Scale:
    name = os.environ.get("FAULTS_SCALE", "ci")
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"FAULTS_SCALE={name!r}: use one of {', '.join(SCALES)}") from None
