"""Every model of the app, gathered so Django finds them; each is defined in its room."""

from scheduler.alerts.models import (
    AlertChannel,
    AlertDelivery,
    AlertPolicy,
    Incident,
    WatchdogLease,
)
from scheduler.beat.models import BeatChange, BeatEntry, BeatHeartbeat
from scheduler.runs.models import JobRun, RollupMark, RunHour, WorkerHeartbeat
from scheduler.schedules.models import LoadForecast, MisfirePolicy, OverlapPolicy, Schedule

__all__ = [
    "AlertChannel",
    "AlertDelivery",
    "AlertPolicy",
    "BeatChange",
    "BeatEntry",
    "BeatHeartbeat",
    "Incident",
    "JobRun",
    "LoadForecast",
    "MisfirePolicy",
    "OverlapPolicy",
    "RollupMark",
    "RunHour",
    "Schedule",
    "WatchdogLease",
    "WorkerHeartbeat",
]
