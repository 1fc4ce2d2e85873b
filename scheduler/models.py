"""Every model of the app, gathered so Django finds them; each is defined in its room."""

from scheduler.alerts.models import (
    AlertChannel,
    AlertDelivery,
    AlertPolicy,
    CallbackDelivery,
    Incident,
    WatchdogLease,
)
from scheduler.beat.models import BeatChange, BeatEntry, BeatHeartbeat
from scheduler.runs.models import JobRun, RollupMark, RunHour, RunRequest, WorkerHeartbeat
from scheduler.schedules.models import LoadForecast, MisfirePolicy, OverlapPolicy, Schedule
from scheduler.web.models import ApiToken

__all__ = [
    "AlertChannel",
    "AlertDelivery",
    "AlertPolicy",
    "ApiToken",
    "BeatChange",
    "BeatEntry",
    "BeatHeartbeat",
    "CallbackDelivery",
    "Incident",
    "JobRun",
    "LoadForecast",
    "MisfirePolicy",
    "OverlapPolicy",
    "RollupMark",
    "RunHour",
    "RunRequest",
    "Schedule",
    "WatchdogLease",
    "WorkerHeartbeat",
]
