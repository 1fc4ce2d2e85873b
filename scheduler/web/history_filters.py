"""The run history's list filters. Each one narrows by an indexed column and none reads the
history to build its choices: jobs come from the catalog and the cron entries, a schedule is
typed (a name prefix) or comes from a link (its id), and time ranges are computed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs_catalog.models import JobDefinition
from scheduler.internal_tasks import internal
from scheduler.schedules.models import Schedule

#: A name prefix matching more schedules than this filters by a subquery instead of a list.
MAX_LISTED_SCHEDULES = 500


def _last(params: dict[str, Any], name: str) -> str:
    value = params.pop(name, None)
    if isinstance(value, list):
        value = value[-1] if value else None
    return (value or "").strip()


class InputFilter(admin.ListFilter):
    """A filter with text inputs in the sidebar (a small GET form that keeps the other
    parameters of the page), instead of a list of every value."""

    template = "admin/scheduler/jobrun/input_filter.html"
    parameters: tuple[str, ...] = ()
    #: The form's inputs: (parameter, label, input type).
    inputs: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any):
        super().__init__(request, params, model, model_admin)
        self.values = {name: _last(params, name) for name in self.parameters}
        self.used_parameters = {k: v for k, v in self.values.items() if v}
        self.request = request

    def expected_parameters(self) -> list[str]:
        return list(self.parameters)

    def has_output(self) -> bool:
        return True

    def selected_label(self) -> str:
        return ""

    def input_rows(self) -> list[tuple[str, str, str, str]]:
        return [(name, label, kind, self.values[name]) for name, label, kind in self.inputs]

    def preserved(self) -> list[tuple[str, str]]:
        """The page's other parameters, kept by the form; the page number restarts."""
        return [
            (name, value)
            for name, values in self.request.GET.lists()
            if name not in self.parameters and name != "p"
            for value in values
        ]

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        yield {
            "selected": not self.used_parameters,
            "query_string": changelist.get_query_string(remove=self.parameters),
            "display": "All",
        }


class ScheduleFilter(InputFilter):
    """``schedule=<id>`` (the links from a schedule's page), or ``schedule_name=<prefix>``."""

    title = "schedule"
    parameters = ("schedule", "schedule_name")
    inputs = (("schedule_name", "Name starts with", "text"),)

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any):
        super().__init__(request, params, model, model_admin)
        self.schedule: Schedule | None = None
        raw = self.values["schedule"]
        if raw:
            if not raw.isdigit():
                raise IncorrectLookupParameters(f"schedule={raw!r} is not a schedule id")
            self.schedule = Schedule.objects.filter(pk=int(raw)).only("id", "name").first()

    def selected_label(self) -> str:
        if self.values["schedule"]:
            name = self.schedule.name if self.schedule else "(deleted)"
            return f"{name} (#{self.values['schedule']})"
        return ""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.values["schedule"]:
            queryset = queryset.filter(schedule_id=int(self.values["schedule"]))
        prefix = self.values["schedule_name"]
        if prefix:
            queryset = queryset.filter(schedule_id__in=schedules_named(prefix))
        return queryset


def schedules_named(prefix: str) -> list[int] | QuerySet:
    """Ids of the schedules whose name starts with ``prefix`` (any case): a list when there
    are few (the planner then walks the (schedule, -scheduled_for) index per schedule), else
    a subquery (most runs match, and walking the time index is cheapest)."""
    names = Schedule.objects.filter(name__istartswith=prefix).values_list("pk", flat=True)
    ids = list(names[: MAX_LISTED_SCHEDULES + 1])
    return ids if len(ids) <= MAX_LISTED_SCHEDULES else names


class JobFilter(admin.SimpleListFilter):
    """By job: the catalog's jobs and the tasks of plain cron entries (small tables), never
    a DISTINCT over the history; the platform's own tasks (Celery's cleanup, alert delivery)
    are not offered, though ``?job=`` still takes any name."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        catalog = dict(JobDefinition.objects.exclude(internal()).values_list("name", "title"))
        tasks = (
            PeriodicTask.objects.exclude(task__in=list(catalog))
            .exclude(internal("task"))
            .values_list("task", flat=True)
        )
        names = {**catalog, **{task: task for task in tasks.distinct()}}
        return sorted(names.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(task_name=self.value())
        return queryset


class ScheduledFilter(InputFilter):
    """When the run was scheduled for: today, the last 7 or 30 days, or a range of days
    (inclusive, in the site's time zone). A range on the time index."""

    title = "scheduled for"
    parameters = ("scheduled", "scheduled_from", "scheduled_to")
    inputs = (("scheduled_from", "From (day)", "date"), ("scheduled_to", "To (day)", "date"))
    PRESETS = {"today": ("Today", 0), "7d": ("Past 7 days", 7), "30d": ("Past 30 days", 30)}

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any):
        super().__init__(request, params, model, model_admin)
        preset = self.values["scheduled"]
        if preset and preset not in self.PRESETS:
            raise IncorrectLookupParameters(f"scheduled={preset!r} is not a known range")
        self.start, self.end = self._bounds(request)

    def _bounds(self, request: HttpRequest) -> tuple[datetime | None, datetime | None]:
        preset = self.values["scheduled"]
        now = timezone.localtime()
        if preset:
            midnight = _midnight(now.date())
            days = self.PRESETS[preset][1]
            if preset == "today":
                return midnight, _midnight(now.date() + timedelta(days=1))
            return now - timedelta(days=days), None
        start = self._day(request, "scheduled_from")
        end = self._day(request, "scheduled_to")
        if start and end and end < start:
            messages.warning(request, "The range ends before it starts: nothing matches.")
        return (
            _midnight(start) if start else None,
            _midnight(end + timedelta(days=1)) if end else None,
        )

    def _day(self, request: HttpRequest, name: str) -> date | None:
        raw = self.values[name]
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            messages.error(request, f"{raw!r} is not a day (YYYY-MM-DD); it was ignored.")
            self.used_parameters.pop(name, None)
            return None

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        yield from super().choices(changelist)
        for value, (label, _) in self.PRESETS.items():
            yield {
                "selected": self.values["scheduled"] == value,
                "query_string": changelist.get_query_string(
                    {"scheduled": value}, remove=self.parameters
                ),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.start is not None:
            queryset = queryset.filter(scheduled_for__gte=self.start)
        if self.end is not None:
            queryset = queryset.filter(scheduled_for__lt=self.end)
        return queryset


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time()), timezone.get_current_timezone())
