"""The run history admin: every attempt, newest first, fast on millions of rows; a run's page
with everything it recorded; "retry now" and "cancel" for operators.

Nobody edits history: the admin is read-only, and the two actions are POST-only views guarded
by the ``scheduler.retry_run`` / ``scheduler.cancel_run`` permissions that call
:mod:`scheduler.runs.actions`.

Why it stays fast (see bench/history_admin.py): the list never counts (lookahead pagination,
:mod:`scheduler.web.changelist`), sorts only by the (scheduled_for, id) index, filters and searches
on indexed columns only (:mod:`scheduler.web.history_filters`, :mod:`scheduler.web.history_search`),
and reads neither the heavy text fields nor one related row per line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import ShowFacets
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from jobs_catalog.admin import ReadOnlyAdminMixin
from scheduler.alerts.callbacks.admin import occurrence_callbacks
from scheduler.runs import actions as run_actions
from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.web import charts, run_progress
from scheduler.web.changelist import UncountedChangeList
from scheduler.web.display import (
    NONE,
    format_duration,
    format_time,
    masked_params,
    monospace,
    pretty_json,
    status_badge,
    status_label,
    trigger_label,
)
from scheduler.web.history_filters import JobFilter, ScheduledFilter, ScheduleFilter
from scheduler.web.history_search import HELP_TEXT, search_runs
from scheduler.web.run_stats import SPARK_RUNS, schedule_summary

Status = JobRun.Status

#: What the list reads of each run (and of its schedule): never logs, traceback or result.
LIST_FIELDS = (
    "id",
    "scheduled_for",
    "status",
    "note",
    "task_name",
    "trigger",
    "attempt",
    "max_attempts",
    "started_at",
    "duration",
    "schedule__id",
    "schedule__name",
)

#: Query parameters the list accepts: those of its filters. Anything else (say
#: ``?logs__contains=x``, a scan of the whole table) is refused.
FILTER_PARAMETERS = frozenset(
    {
        "status__exact",
        "trigger__exact",
        JobFilter.parameter_name,
        *ScheduleFilter.parameters,
        *ScheduledFilter.parameters,
    }
)

#: Actions on a run: name -> (button text, permission codename, service, allowed).
RUN_ACTIONS: dict[str, tuple[str, str, Callable[..., Any], Callable[[JobRun], bool]]] = {
    "retry": ("Retry now", "retry_run", run_actions.retry_run, run_actions.can_retry),
    "cancel": ("Cancel", "cancel_run", run_actions.cancel_run, run_actions.can_cancel),
}


class HistoryChangeList(UncountedChangeList):
    time_ordering = ("-scheduled_for", "-id")

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        return super().get_queryset(request, exclude_parameters).only(*LIST_FIELDS)


class JobRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "scheduled_column",
        "status_column",
        "job_column",
        "schedule_column",
        "trigger_column",
        "attempt_column",
        "started_column",
        "duration_column",
    )
    list_display_links = ("scheduled_column",)
    sortable_by = ("scheduled_column",)
    list_filter = (
        ("status", admin.ChoicesFieldListFilter),
        JobFilter,
        ScheduleFilter,
        ("trigger", admin.ChoicesFieldListFilter),
        ScheduledFilter,
    )
    list_select_related = ("schedule",)
    # Only so the search box shows: get_search_results does the searching, on indexes.
    search_fields = ("task_name",)
    search_help_text = HELP_TEXT
    ordering = ("-scheduled_for", "-id")
    list_per_page = 100
    list_max_show_all = 0
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    actions = None
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status_display",
                    "job_display",
                    "schedule_display",
                    "trigger_display",
                    "attempt_display",
                    "attempts_display",
                    "note_display",
                )
            },
        ),
        (
            "Times",
            {
                "fields": (
                    "scheduled_display",
                    "created_display",
                    "published_display",
                    "started_display",
                    "finished_display",
                    "duration_display",
                    "queue_wait_display",
                    "retry_display",
                )
            },
        ),
        ("Where", {"fields": ("task_id_display", "queue_display", "worker_display")}),
        ("Parameters", {"fields": ("params_display", "args_display")}),
        (
            "Outcome",
            {"fields": ("result_display", "error_display", "traceback_display", "logs_display")},
        ),
        ("Completion callbacks", {"fields": ("callbacks_display",)}),
    )
    readonly_fields = (
        *(name for _, options in fieldsets for name in options["fields"]),
        "progress_display",
    )

    class Media:
        css = {"all": ("scheduler/admin.css", "scheduler/run_progress.css")}
        js = ("scheduler/run_progress.js",)

    # --- permissions ------------------------------------------------------------------------
    def has_action_permission(self, request: HttpRequest, name: str) -> bool:
        codename = RUN_ACTIONS[name][1]
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    # --- the list ---------------------------------------------------------------------------
    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[HistoryChangeList]:
        return HistoryChangeList

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup in FILTER_PARAMETERS

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        return search_runs(queryset, search_term), False

    @admin.display(description="scheduled for", ordering="scheduled_for")
    def scheduled_column(self, obj: JobRun) -> str:
        return format_html(
            '<span class="scheduler-nowrap" title="#{}">{}</span>',
            obj.pk,
            format_time(obj.scheduled_for),
        )

    @admin.display(description="status")
    def status_column(self, obj: JobRun) -> str:
        if obj.note:
            return format_html('<span title="{}">{}</span>', obj.note, status_badge(obj.status))
        return status_badge(obj.status)

    @admin.display(description="job")
    def job_column(self, obj: JobRun) -> str:
        return format_html(
            '<span class="scheduler-clip scheduler-clip-short" title="{}">{}</span>',
            obj.task_name,
            obj.task_name,
        )

    @admin.display(description="schedule")
    def schedule_column(self, obj: JobRun) -> str:
        if obj.schedule_id is None:
            return NONE
        # A long name is cut with an ellipsis (the CSS), whole in its title: one line a run.
        return format_html(
            '<span class="scheduler-cell"><a href="{}" class="scheduler-clip" title="{}">{}</a>'
            ' <a href="?{}" class="scheduler-filter-link" '
            'title="Only this schedule\'s runs">&#9776;</a></span>',
            reverse(f"{self.admin_site.name}:scheduler_schedule_change", args=[obj.schedule_id]),
            obj.schedule.name,
            obj.schedule.name,
            urlencode({"schedule": obj.schedule_id}),
        )

    @admin.display(description="trigger")
    def trigger_column(self, obj: JobRun) -> str:
        return trigger_label(obj.trigger)

    @admin.display(description="attempt")
    def attempt_column(self, obj: JobRun) -> str:
        return attempt_text(obj)

    @admin.display(description="started")
    def started_column(self, obj: JobRun) -> str:
        """How long after its time the run started (its start time in the title): a second
        full time per row would not fit the list in a laptop's window."""
        if obj.started_at is None:
            return NONE
        delay = (obj.started_at - obj.scheduled_for).total_seconds()
        return format_html(
            '<span title="{}">{}</span>',
            format_time(obj.started_at),
            f"+{format_duration(delay)}" if delay >= 0.0005 else "on time",
        )

    @admin.display(description="duration")
    def duration_column(self, obj: JobRun) -> str:
        if obj.status == Status.RUNNING and obj.started_at is not None:
            return f"{format_duration((timezone.now() - obj.started_at).total_seconds())} so far"
        return format_duration(obj.duration)

    # --- a run's page -------------------------------------------------------------------------
    def get_fieldsets(self, request: HttpRequest, obj: JobRun | None = None) -> Any:
        """A run that reported progress, or may still, shows its bar after its status."""
        if obj is None or (obj.progress is None and obj.status not in JobRun.ACTIVE):
            return self.fieldsets
        (name, options), *rest = self.fieldsets
        status, *others = options["fields"]
        return ((name, {**options, "fields": (status, "progress_display", *others)}), *rest)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        queryset = self.get_queryset(request).select_related("schedule", "periodic_task")
        try:
            return queryset.get(pk=int(object_id))
        except (JobRun.DoesNotExist, ValueError, TypeError):
            return None

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: JobRun | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["run_actions"] = self.available_actions(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def available_actions(self, request: HttpRequest, obj: JobRun) -> list[dict[str, str]]:
        out = []
        for name, (label, _, _, allowed) in RUN_ACTIONS.items():
            if self.has_action_permission(request, name) and allowed(obj):
                if name == "cancel" and obj.status == Status.RUNNING:
                    label = "Cancel (stop the job)"
                url = reverse(f"{self.admin_site.name}:scheduler_jobrun_{name}", args=[obj.pk])
                out.append({"name": name, "label": label, "url": url})
        return out

    def _zone(self, obj: JobRun) -> str:
        if obj.schedule_id is not None and obj.schedule is not None:
            return obj.schedule.timezone
        return timezone.get_current_timezone_name()

    def _moment(self, obj: JobRun, moment: datetime | None) -> str:
        if moment is None:
            return NONE
        text = format_time(moment, self._zone(obj))
        utc = format_time(moment, "UTC")
        if text == utc:
            return text
        return format_html('{} <span class="scheduler-quiet">({})</span>', text, utc)

    @admin.display(description="status")
    def status_display(self, obj: JobRun) -> str:
        # The badge names the status; only what the label adds ("committed, not yet
        # published") is said beside it, so the status is not shown twice.
        label = str(Status(obj.status).label) if obj.status in Status.values else ""
        _, _, more = label.partition(" (")
        if not more:
            return status_badge(obj.status)
        return format_html(
            '{} <span class="scheduler-quiet">{}</span>', status_badge(obj.status), more[:-1]
        )

    @admin.display(description="progress")
    def progress_display(self, obj: JobRun) -> str:
        url = reverse(f"{self.admin_site.name}:scheduler_jobrun_progress", args=[obj.pk])
        return run_progress.bar(obj, url)

    @admin.display(description="job")
    def job_display(self, obj: JobRun) -> str:
        return format_html("<code>{}</code>", obj.task_name)

    @admin.display(description="schedule")
    def schedule_display(self, obj: JobRun) -> str:
        if obj.schedule is None:
            task = obj.periodic_task
            if task is not None:
                return format_html("none (cron entry <code>{}</code>)", task.name)
            return "none (its schedule was deleted, or the run did not come from one)"
        changelist = reverse(f"{self.admin_site.name}:scheduler_jobrun_changelist")
        return format_html(
            '<a href="{}">{}</a> ({}) &nbsp;<a href="{}?{}">all its runs</a>',
            reverse(f"{self.admin_site.name}:scheduler_schedule_change", args=[obj.schedule_id]),
            obj.schedule.name,
            obj.schedule.timezone,
            changelist,
            urlencode({"schedule": obj.schedule_id}),
        )

    @admin.display(description="trigger")
    def trigger_display(self, obj: JobRun) -> str:
        return trigger_label(obj.trigger)

    @admin.display(description="attempt")
    def attempt_display(self, obj: JobRun) -> str:
        return attempt_text(obj)

    @admin.display(description="attempts of this occurrence")
    def attempts_display(self, obj: JobRun) -> str:
        first = obj.first_attempt_id
        attempts = (
            JobRun.objects.filter(Q(pk=first) | Q(occurrence_id=first))
            .only("id", "attempt", "status", "trigger", "started_at", "finished_at")
            .order_by("attempt", "id")
        )
        rows = []
        for attempt in attempts:
            url = reverse(f"{self.admin_site.name}:scheduler_jobrun_change", args=[attempt.pk])
            label = format_html("attempt {} (run #{})", attempt.attempt, attempt.pk)
            link = (
                format_html("<strong>{}</strong> (this page)", label)
                if attempt.pk == obj.pk
                else format_html('<a href="{}">{}</a>', url, label)
            )
            rows.append(
                (
                    link,
                    status_badge(attempt.status),
                    trigger_label(attempt.trigger),
                    self._moment(obj, attempt.started_at),
                )
            )
        return format_html(
            '<table class="scheduler-attempts"><tbody>{}</tbody></table>',
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="sent")
    def callbacks_display(self, obj: JobRun) -> str:
        return occurrence_callbacks(obj.first_attempt_id)

    @admin.display(description="note")
    def note_display(self, obj: JobRun) -> str:
        return monospace(obj.note)

    @admin.display(description="scheduled for")
    def scheduled_display(self, obj: JobRun) -> str:
        return self._moment(obj, obj.scheduled_for)

    @admin.display(description="recorded")
    def created_display(self, obj: JobRun) -> str:
        return self._moment(obj, obj.created_at)

    @admin.display(description="published")
    def published_display(self, obj: JobRun) -> str:
        return self._moment(obj, obj.published_at)

    @admin.display(description="started")
    def started_display(self, obj: JobRun) -> str:
        return self._moment(obj, obj.started_at)

    @admin.display(description="finished")
    def finished_display(self, obj: JobRun) -> str:
        return self._moment(obj, obj.finished_at)

    @admin.display(description="duration")
    def duration_display(self, obj: JobRun) -> str:
        return format_duration(obj.duration)

    @admin.display(description="waited in the queue")
    def queue_wait_display(self, obj: JobRun) -> str:
        return format_duration(obj.queue_wait)

    @admin.display(description="next attempt")
    def retry_display(self, obj: JobRun) -> str:
        if obj.next_attempt_at is None and obj.retry_delay is None:
            return NONE
        return format_html(
            "{} (after a {} backoff)",
            self._moment(obj, obj.next_attempt_at),
            format_duration(obj.retry_delay),
        )

    @admin.display(description="Celery task id")
    def task_id_display(self, obj: JobRun) -> str:
        return format_html("<code>{}</code>", obj.task_id)

    @admin.display(description="queue")
    def queue_display(self, obj: JobRun) -> str:
        return obj.queue or "default"

    @admin.display(description="worker")
    def worker_display(self, obj: JobRun) -> str:
        if not obj.worker_host:
            return NONE
        return f"{obj.worker_host} (pid {obj.worker_pid})" if obj.worker_pid else obj.worker_host

    @admin.display(description="parameters")
    def params_display(self, obj: JobRun) -> str:
        shown = masked_params(obj.params, obj.task_name)
        if not shown:
            return "none"
        return monospace(json.dumps(shown, indent=2, sort_keys=True, default=str))

    @admin.display(description="positional arguments")
    def args_display(self, obj: JobRun) -> str:
        if not obj.args:
            return "none"
        return monospace(json.dumps(obj.args, indent=2, default=str))

    @admin.display(description="result")
    def result_display(self, obj: JobRun) -> str:
        return pretty_json(obj.result)

    @admin.display(description="error")
    def error_display(self, obj: JobRun) -> str:
        if not (obj.error_type or obj.error_message):
            return NONE
        return format_html(
            "<code>{}</code>{}",
            obj.error_type or "error",
            monospace(obj.error_message, empty=""),
        )

    @admin.display(description="traceback")
    def traceback_display(self, obj: JobRun) -> str:
        return monospace(obj.traceback)

    @admin.display(description="logs")
    def logs_display(self, obj: JobRun) -> str:
        return monospace(obj.logs)

    # --- the actions ------------------------------------------------------------------------
    def get_urls(self) -> list:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(self._action_view(name)),
                name=f"{prefix}_{name}",
            )
            for name in RUN_ACTIONS
        ]
        urls.append(
            path(
                "<path:object_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name=f"{prefix}_progress",
            )
        )
        return urls + super().get_urls()

    def progress_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The run's status and progress as JSON, which its bar polls while it is active
        (``run_progress.as_json``); refused without the view permission of runs."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            pk = int(unquote(object_id))
        except ValueError:
            pk = None
        run = JobRun.objects.filter(pk=pk).only("id", "status", "progress").first() if pk else None
        if run is None:
            return JsonResponse({"error": "No such run."}, status=404)
        return JsonResponse(run_progress.as_json(run))

    def _action_view(self, name: str) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            return self.run_action_view(request, object_id, name)

        view.__name__ = f"run_{name}_view"
        return view

    def run_action_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        """A button of a run's page: POST only (the admin view wrapper checks the CSRF
        token); refused without the action's permission."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj) or not self.has_action_permission(
            request, name
        ):
            raise PermissionDenied
        page = reverse(f"{self.admin_site.name}:scheduler_jobrun_change", args=[obj.pk])
        service = RUN_ACTIONS[name][2]
        try:
            result = service(obj.pk, request.user)
        except run_actions.RunActionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(page)
        run = result.run
        if name == "retry":
            self.log_change(request, obj, f"Retried as run #{run.pk} (attempt {run.attempt}).")
            self.log_addition(request, run, f"Retry of run #{obj.pk}.")
            text = (
                f"Retry queued: attempt {run.attempt} of this occurrence is run #{run.pk} "
                f"({status_label(run.status).lower()})."
            )
            page = reverse(f"{self.admin_site.name}:scheduler_jobrun_change", args=[run.pk])
        else:
            was = obj.status
            self.log_change(request, obj, f"Cancelled (was {was}).")
            text = (
                f"Run #{obj.pk} cancelled; its worker was told to stop it."
                if was == Status.RUNNING
                else f"Run #{obj.pk} cancelled: it will not run."
            )
        self.message_user(request, text, messages.SUCCESS)
        if result.warning:
            self.message_user(request, result.warning, messages.WARNING)
        return HttpResponseRedirect(page)


def attempt_text(run: JobRun) -> str:
    return f"{run.attempt} of {max(run.max_attempts, run.attempt)}"


def recent_runs_panel(schedule: Schedule, site_name: str = "admin") -> str:
    """For a schedule's page: its last runs, success rate and durations over recent runs
    (two bounded queries, :func:`scheduler.web.run_stats.schedule_summary`), and a link to all
    its runs."""
    summary = schedule_summary(schedule)
    changelist = reverse(f"{site_name}:scheduler_jobrun_changelist")
    everything = format_html(
        '<a href="{}?{}">All runs of this schedule</a>',
        changelist,
        urlencode({"schedule": schedule.pk}),
    )
    if not summary.recent:
        return format_html("<p>No runs yet. {}</p>", everything)
    rate = summary.success_rate
    figures = (
        format_html(
            "Over the last {} with an outcome: <strong>{}</strong> succeeded ({} of {}); "
            "duration of a successful run: median {}, p95 {}.",
            f"{summary.sampled} runs" if summary.sampled != 1 else "run",
            f"{rate:.0%}" if rate is not None else NONE,
            summary.succeeded,
            summary.sampled,
            format_duration(summary.median_duration),
            format_duration(summary.p95_duration),
        )
        if summary.sampled
        else "No run has finished yet."
    )
    rows = [
        (
            reverse(f"{site_name}:scheduler_jobrun_change", args=[run.pk]),
            format_time(run.scheduled_for, schedule.timezone),
            status_badge(run.status),
            trigger_label(run.trigger),
            attempt_text(run),
            format_duration(run.duration),
        )
        for run in summary.recent
    ]
    table = format_html(
        '<table class="scheduler-runs"><thead><tr><th>scheduled for</th><th>status</th>'
        "<th>trigger</th><th>attempt</th><th>duration</th></tr></thead><tbody>{}</tbody>"
        "</table>",
        format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            rows,
        ),
    )
    return format_html(
        '<p>{}</p><div class="scheduler-spark">{}</div>{}<p>{}</p>',
        figures,
        run_sparkline(summary.spark, schedule.timezone),
        table,
        everything,
    )


def run_sparkline(runs: list[JobRun], zone: str) -> str:
    """A schedule's last runs as bars: height the duration, colour the outcome."""
    marks = [
        charts.Spark(
            run.duration,
            charts.OUTCOME_CLASSES.get(run.status, "skipped"),
            f"{format_time(run.scheduled_for, zone)}: "
            f"{status_label(run.status)}, {format_duration(run.duration)}",
        )
        for run in runs
    ]
    runs_text = f"{len(marks)} runs" if len(marks) != 1 else "run"
    label = f"Duration and outcome of the last {runs_text}, oldest first"
    sparkline = charts.sparkline(marks, label, slots=SPARK_RUNS)
    return format_html('{}<p class="help">{}</p>', sparkline, label)
