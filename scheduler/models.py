"""Every model of the app, gathered so Django finds them; each is defined in its room."""

from scheduler.alerts.models import (
    AlertChannel,
    AlertDelivery,
    AlertPolicy,
    Incident,
    WatchdogLease,
)
from scheduler.beat.models import BeatChange, BeatEntry
from scheduler.runs.models import JobRun, WorkerHeartbeat
from scheduler.schedules.models import MisfirePolicy, OverlapPolicy, Schedule

__all__ = [
    "AlertChannel",
    "AlertDelivery",
    "AlertPolicy",
    "BeatChange",
    "BeatEntry",
    "Incident",
    "JobRun",
    "MisfirePolicy",
    "OverlapPolicy",
    "Schedule",
    "WatchdogLease",
    "WorkerHeartbeat",
]
