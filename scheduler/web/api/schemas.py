"""What the API takes and gives, as typed schemas (the OpenAPI document is generated from
these). Times are ISO 8601 with their offset (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import AfterValidator


def _in_utc(value: datetime) -> datetime:
    """A time as UTC (a time without an offset is taken as UTC). ISO 8601 allows offsets up
    to ±23:59, the database only up to ±15:59: converted here, any offset works."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


#: A time a client sends: any ISO 8601 offset, stored and compared in UTC.
UtcDatetime = Annotated[datetime, AfterValidator(_in_utc)]


class ErrorBody(Schema):
    code: str = Field(description="A stable name of the reason, for programs.")
    message: str = Field(description="What went wrong, for people.")
    fields: dict[str, list[str]] | None = Field(
        None, description="Field-level errors: a parameter or field name -> its problems."
    )
    run_id: int | None = Field(None, description="The run the error is about, when one is.")


class ErrorOut(Schema):
    error: ErrorBody


# --- catalog ------------------------------------------------------------------------------
class RetryOut(Schema):
    max_attempts: int
    backoff_base: float | None = None
    backoff_cap: float | None = None


class JobOut(Schema):
    name: str
    title: str
    description: str
    queue: str
    available: bool
    unavailable_reason: str
    source: str


class JobDetailOut(JobOut):
    params_schema: dict[str, Any] = Field(
        description='JSON Schema of the parameters; secret ones carry "secret": true.'
    )
    defaults: dict[str, Any]
    retry: dict[str, Any]
    soft_time_limit: int | None
    time_limit: int | None
    cancellable: bool = Field(
        description="The job stops by itself between chunks when its run is cancelled."
    )


class JobListOut(Schema):
    items: list[JobOut]


# --- runs ---------------------------------------------------------------------------------
class TriggerIn(Schema):
    params: dict[str, Any] = Field(
        default_factory=dict, description="The job's parameters, checked against its schema."
    )
    callback_url: str | None = Field(
        None,
        max_length=2000,
        description="Receives a signed JSON POST when the run ends (http or https).",
    )


class ProgressOut(Schema):
    done: float
    total: float | None = None
    percent: float | None = Field(None, description="0-100; empty when the total is unknown.")
    message: str = ""
    at: datetime | None = None


class ErrorOfRun(Schema):
    type: str
    message: str
    traceback: str | None = None


class AttemptOut(Schema):
    id: int
    attempt: int
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_type: str = ""


class ScheduleRef(Schema):
    id: int
    name: str


class RunLinks(Schema):
    self: str
    cancel: str
    admin: str


class RunOut(Schema):
    id: int = Field(description="The run (its first attempt's id, which stands for it).")
    attempt_id: int = Field(description="The attempt these fields describe (the latest).")
    job: str
    status: str
    finished: bool = Field(description="True once nothing more will happen to the run.")
    trigger: str
    schedule: ScheduleRef | None = None
    attempt: int
    max_attempts: int
    scheduled_for: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    queue: str
    worker: str
    params: dict[str, Any] | list[Any]
    progress: ProgressOut | None = None
    result: str | None = None
    error: ErrorOfRun | None = None
    note: str
    attempts: list[AttemptOut] | None = Field(
        None, description="Every attempt of the run (on a single run, not in lists)."
    )
    logs: str | None = Field(None, description="The job's log lines, with ?logs=true.")
    links: RunLinks


class RunPageOut(Schema):
    items: list[RunOut]
    next: str | None = Field(description="The URL of the next (older) page; empty at the end.")


# --- schedules ----------------------------------------------------------------------------
class PauseOut(Schema):
    at: datetime
    by: str | None = None
    note: str = ""


class ScheduleOut(Schema):
    id: int
    name: str
    description: str
    job: str
    params: dict[str, Any]
    cron: str
    timezone: str
    enabled: bool
    paused: PauseOut | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    overlap_policy: str
    misfire_policy: str
    catchup_window: int
    max_catchup_runs: int
    jitter: int
    queue: str
    retry_max_attempts: int | None = None
    retry_backoff_base: float | None = None
    retry_backoff_cap: float | None = None
    created_at: datetime
    updated_at: datetime


class SchedulePageOut(Schema):
    items: list[ScheduleOut]
    next: str | None = None


class ScheduleIn(Schema):
    name: str = Field(max_length=200)
    job: str
    cron: str = Field(description="minute hour day-of-month month weekday")
    params: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"
    description: str = ""
    enabled: bool = True
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None
    overlap_policy: str | None = None
    misfire_policy: str | None = None
    catchup_window: int | None = None
    max_catchup_runs: int | None = None
    jitter: int | None = None
    queue: str = ""
    retry_max_attempts: int | None = None
    retry_backoff_base: float | None = None
    retry_backoff_cap: float | None = None


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _kept(**options: Any) -> Any:
    """A field a change may leave out (nothing changes) but not set to null: the document
    shows its type alone."""
    return Field(None, json_schema_extra=_drop_default, **options)


class ScheduleChange(Schema):
    """Only the fields given change. A secret parameter left out keeps its stored value."""

    name: str = _kept(max_length=200)
    cron: str = _kept()
    params: dict[str, Any] | None = None
    timezone: str = _kept()
    description: str | None = None
    enabled: bool = _kept()
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None
    overlap_policy: str = _kept()
    misfire_policy: str = _kept()
    catchup_window: int = _kept()
    max_catchup_runs: int = _kept()
    jitter: int = _kept()
    queue: str | None = None
    retry_max_attempts: int | None = None
    retry_backoff_base: float | None = None
    retry_backoff_cap: float | None = None


class PauseIn(Schema):
    note: str = Field("", max_length=2000)
