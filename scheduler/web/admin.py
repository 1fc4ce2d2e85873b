"""The schedules admin: pick a catalog job, fill a form made from its parameters, watch the
cron's next fire times; run now, pause with a note, resume, duplicate and backfill.

django-celery-beat's own admin stays for superusers only: through it anyone could point a
cron entry at any task. The cron entries a schedule owns are read-only there, with their
secret parameters masked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join, linebreaks
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from jobs_catalog.models import JobDefinition
from scheduler.alerts.admin import AlertPolicyInline
from scheduler.formatting import doc_text
from scheduler.internal_tasks import is_internal
from scheduler.policies import cron
from scheduler.runs import actions as run_actions
from scheduler.runs.models import JobRun
from scheduler.schedules import services
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule
from scheduler.web import views
from scheduler.web.display import (
    NONE,
    format_time,
    masked_params,
    params_table,
    status_badge,
    status_label,
)
from scheduler.web.forms import (
    BackfillForm,
    JobPickForm,
    PauseForm,
    ScheduleForm,
    build_param_fields,
    job_of,
    offered_jobs,
    schedule_form_class,
    zone_or_utc,
)
from scheduler.web.history_admin import JobRunAdmin, recent_runs_panel

logger = logging.getLogger(__name__)


# --- list filters ---------------------------------------------------------------------------
class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("active", "Active"), ("paused", "Paused"), ("disabled", "Disabled")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "active":
            return queryset.filter(enabled=True, paused_at__isnull=True)
        if value == "paused":
            return queryset.filter(paused_at__isnull=False)
        if value == "disabled":
            return queryset.filter(enabled=False)
        return queryset


class LastOutcomeFilter(admin.SimpleListFilter):
    """On the ``last_run_status`` annotation of :meth:`ScheduleAdmin.get_queryset`."""

    title = "last outcome"
    parameter_name = "last_outcome"
    NEVER = "never"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        statuses = [(s.value, status_label(s.value)) for s in JobRun.Status]
        return [*statuses, (self.NEVER, "Never run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == self.NEVER:
            return queryset.filter(last_run_status__isnull=True)
        if value in JobRun.Status.values:
            return queryset.filter(last_run_status=value)
        return queryset


# --- the schedule admin ---------------------------------------------------------------------
#: Actions also offered as buttons on a schedule's page: name -> (button text, permission).
OBJECT_ACTIONS = {
    "run": ("Run now", "run"),
    "pause": ("Pause", "pause"),
    "resume": ("Resume", "pause"),
    "duplicate": ("Duplicate", "add"),
    "backfill": ("Backfill", "run"),
}


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name_column",
        "job_column",
        "cron_column",
        "next_run",
        "last_run",
    )
    list_display_links = ("name_column",)
    list_filter = (("job", admin.RelatedOnlyFieldListFilter), StateFilter, LastOutcomeFilter)
    list_select_related = ("job", "periodic_task__beat_entry")
    search_fields = ("name", "description", "job__name", "job__title", "cron")
    readonly_fields = (
        "job_display",
        "cron_display",
        "start_display",
        "end_display",
        "status_display",
        "parameters_display",
        "recent_runs_display",
    )
    actions = ("run_now", "pause", "resume", "duplicate", "backfill")
    inlines = (AlertPolicyInline,)
    list_per_page = 100

    class Media:
        css = {"all": ("scheduler/admin.css", "scheduler/charts.css")}

    # --- permissions ------------------------------------------------------------------------
    def has_run_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.run_schedule")

    def has_pause_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.pause_schedule")

    def _can_edit(self, request: HttpRequest, obj: Schedule | None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return self.has_change_permission(request, obj)

    # --- the list ---------------------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        latest = JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-scheduled_for")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_at=Subquery(latest.values("scheduled_for")[:1]),
                last_run_status=Subquery(latest.values("status")[:1]),
            )
        )

    @admin.display(description="name", ordering="name")
    def name_column(self, obj: Schedule) -> str:
        # A long name is cut with an ellipsis (the CSS), whole in its title.
        return format_html('<span class="scheduler-clip" title="{}">{}</span>', obj.name, obj.name)

    @admin.display(description="job", ordering="job__title")
    def job_column(self, obj: Schedule) -> str:
        return format_html(
            '<span class="scheduler-clip scheduler-clip-short" title="{}">{}</span>',
            obj.job.name,
            obj.job.title,
        )

    @admin.display(description="cron", ordering="cron")
    def cron_column(self, obj: Schedule) -> str:
        # The zone beside the expression it is read in (no column of its own: the list must
        # fit a laptop's window).
        return format_html(
            '{}<br><code class="scheduler-cron-expr">{}</code> '
            '<span class="scheduler-quiet scheduler-nowrap">{}</span>',
            cron.describe(obj.cron),
            obj.cron,
            obj.timezone,
        )

    @admin.display(description="next run", ordering="periodic_task__beat_entry__next_fire_at")
    def next_run(self, obj: Schedule) -> str:
        """The next fire time of an active schedule, else its state (paused: its note in the
        title); no state column of its own, so the list fits a laptop's window."""
        if obj.is_paused or not obj.enabled:
            return self.state(obj)
        return format_time(self.next_fire(obj), obj.timezone)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj: Schedule) -> str:
        moment = getattr(obj, "last_run_at", None)
        if moment is None:
            return "never"
        return format_html(
            "{}<br>{}", format_time(moment, obj.timezone), status_badge(obj.last_run_status)
        )

    @admin.display(description="state", ordering="paused_at")
    def state(self, obj: Schedule) -> str:
        if obj.is_paused:
            return format_html(
                '<span class="scheduler-badge scheduler-state-paused" title="{}">paused</span>',
                obj.pause_note or "no note",
            )
        if not obj.enabled:
            return mark_safe('<span class="scheduler-badge scheduler-state-off">disabled</span>')
        return mark_safe('<span class="scheduler-badge scheduler-state-on">active</span>')

    @staticmethod
    def next_fire(obj: Schedule, now: datetime | None = None) -> datetime | None:
        """Beat's own next fire time when beat has indexed the entry, else the cron's."""
        task = obj.periodic_task if obj.periodic_task_id else None
        entry = getattr(task, "beat_entry", None) if task is not None else None
        if entry is not None:
            return entry.next_fire_at
        now = now or timezone.now()
        after = max(now, obj.start_at) if obj.start_at else now
        try:
            moment = cron.next_fire(obj.cron, obj.timezone, after)
        except ValueError:
            return None
        if moment is not None and obj.end_at is not None and moment > obj.end_at:
            return None
        return moment

    # --- the form ---------------------------------------------------------------------------
    def _requested_job(self, request: HttpRequest) -> JobDefinition | None:
        """The job picked for a new schedule (``?job=<id>``), if it is available."""
        if not hasattr(request, "_scheduler_job"):
            definition = None
            value = request.GET.get("job", "")
            if value.isdigit():
                definition = offered_jobs().filter(pk=int(value)).first()
            request._scheduler_job = definition
        return request._scheduler_job

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        initial.pop("job", None)
        return initial

    def get_form(
        self, request: HttpRequest, obj: Schedule | None = None, change: bool = False, **kwargs
    ) -> type[ScheduleForm]:
        if self._can_edit(request, obj):
            definition = obj.job if obj is not None else self._requested_job(request)
            kwargs["form"] = schedule_form_class(
                definition,
                editing=obj is not None,
                preview_url=reverse(f"{self.admin_site.name}:scheduler_schedule_preview"),
            )
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> list:
        definition = obj.job if obj is not None else self._requested_job(request)
        about = doc_text(definition.description) if definition is not None else ""
        if self._can_edit(request, obj):
            when: list[Any] = ["cron", "timezone", ("start_at", "end_at"), "enabled"]
            fields = build_param_fields(job_of(definition), editing=obj is not None)
            params = list(fields) or ["parameters_display"]
        else:
            when = ["cron_display", "timezone", ("start_display", "end_display"), "enabled"]
            params = ["parameters_display"]
        if obj is not None:
            when.append("status_display")
        runs = []
        if obj is not None and request.user.has_perm(f"{self.opts.app_label}.view_jobrun"):
            runs = [("Recent runs", {"fields": ["recent_runs_display"]})]
        return [
            (None, {"fields": ["name", "job_display", "description"]}),
            *runs,
            ("When", {"fields": when}),
            ("Parameters", {"fields": params, "description": linebreaks(about, autoescape=True)}),
            (
                "Policies",
                {
                    "fields": [
                        "overlap_policy",
                        "misfire_policy",
                        ("catchup_window", "max_catchup_runs"),
                        "jitter",
                    ]
                },
            ),
            (
                "Delivery and retries",
                {
                    "fields": [
                        "queue",
                        "retry_max_attempts",
                        "retry_backoff_base",
                        "retry_backoff_cap",
                    ],
                    "classes": ["collapse"],
                },
            ),
        ]

    @admin.display(description="job")
    def job_display(self, obj: Schedule) -> str:
        definition = obj.job if obj.job_id else None
        if definition is None:
            return NONE
        text = format_html("{} <code>{}</code>", definition.title, definition.name)
        if not definition.available:
            text = format_html(
                '{} <strong class="scheduler-warning">not installed here: {}</strong>',
                text,
                definition.unavailable_reason or "its code is missing",
            )
        if obj.pk is None:
            picker = reverse(f"{self.admin_site.name}:scheduler_schedule_add")
            text = format_html('{} &nbsp;<a href="{}">choose another job</a>', text, picker)
        return text

    @admin.display(description="parameters")
    def parameters_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "This job takes no parameters."
        return params_table(masked_params(obj.params or {}, obj.job.name))

    @admin.display(description="cron")
    def cron_display(self, obj: Schedule) -> str:
        """The cron for people who cannot edit it: in words, with its next fire times."""
        payload = views.preview_payload(obj.cron, obj.timezone)
        upcoming = (
            format_html(
                '<p class="scheduler-cron-next-title">Next fire times in {}:</p>'
                '<ol class="scheduler-next">{}</ol>',
                obj.timezone,
                format_html_join("", "<li>{}</li>", ((t,) for t in payload["next_display"])),
            )
            if payload["next_display"]
            else format_html('<p class="scheduler-cron-error">{}</p>', payload["error"] or NONE)
        )
        return format_html(
            '<code>{}</code><div class="scheduler-cron-preview">'
            '<p class="scheduler-cron-description">{}</p>{}</div>',
            obj.cron,
            payload["description"],
            upcoming,
        )

    @admin.display(description="runs")
    def recent_runs_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return NONE
        return recent_runs_panel(obj, self.admin_site.name)

    @admin.display(description="start")
    def start_display(self, obj: Schedule) -> str:
        return format_time(obj.start_at, obj.timezone)

    @admin.display(description="end")
    def end_display(self, obj: Schedule) -> str:
        return format_time(obj.end_at, obj.timezone)

    @admin.display(description="status")
    def status_display(self, obj: Schedule) -> str:
        if obj.pk is None:
            return NONE
        if obj.is_paused:
            state = format_html(
                "Paused by {} at {}{}",
                obj.paused_by or "someone",
                format_time(obj.paused_at, obj.timezone),
                format_html(": <q>{}</q>", obj.pause_note) if obj.pause_note else ".",
            )
        elif not obj.enabled:
            state = "Disabled: it does not run until enabled."
        else:
            state = format_html(
                "Active; next run {}.", format_time(self.next_fire(obj), obj.timezone)
            )
        last_at = getattr(obj, "last_run_at", None)
        history = reverse(f"{self.admin_site.name}:scheduler_jobrun_changelist")
        last = (
            format_html(
                '{} {} &nbsp;<a href="{}?{}">all runs</a>',
                format_time(last_at, obj.timezone),
                status_badge(obj.last_run_status),
                history,
                urlencode({"schedule": obj.pk}),
            )
            if last_at
            else "never"
        )
        return format_html("<p>{}</p><p>Last run: {}</p>", state, last)

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        # The form ran clean_schedule already; this keeps the cron entry in step.
        save_schedule(obj, validate=False)

    # --- the views --------------------------------------------------------------------------
    def get_urls(self) -> list:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        urls = [path("preview/", wrap(self.preview_view), name=f"{prefix}_preview")]
        for name in OBJECT_ACTIONS:
            urls.append(
                path(
                    f"<path:object_id>/{name}/",
                    wrap(self._object_action_view(name)),
                    name=f"{prefix}_{name}",
                )
            )
        return urls + super().get_urls()

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        return views.cron_preview(request)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if self._requested_job(request) is None:
            return self.pick_job_view(request)
        return super().add_view(request, form_url, extra_context)

    def pick_job_view(self, request: HttpRequest) -> HttpResponse:
        """Step one of adding a schedule: the catalog's available jobs."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = JobPickForm()
        jobs = list(form.fields["job"].queryset)
        asked = request.GET.get("job")
        if asked:
            messages.error(request, "That job is not in the catalog or its code is missing.")
        preserved = {k: v for k, v in request.GET.items() if k != "job"}
        context = {
            **self.admin_site.each_context(request),
            "title": "Add schedule: choose a job",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "jobs": [
                (
                    job,
                    "?" + urlencode({**preserved, "job": job.pk}),
                    len((job.params_schema or {}).get("properties", {})),
                    doc_text(job.description, words=40),
                )
                for job in jobs
            ],
            "unavailable": JobDefinition.objects.filter(available=False).count(),
            "has_view_permission": self.has_view_permission(request),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/scheduler/schedule/pick_job.html", context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "schedule_actions": self._object_action_names(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _object_action_names(self, request: HttpRequest) -> list[tuple[str, str]]:
        return [
            (name, label)
            for name, (label, permission) in OBJECT_ACTIONS.items()
            if getattr(self, f"has_{permission}_permission")(request)
        ]

    def _object_action_view(self, name: str) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            return self.object_action_view(request, object_id, name)

        view.__name__ = f"schedule_{name}_view"
        return view

    def object_action_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        """A button of the change page: GET asks to confirm, POST does it."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        permission = OBJECT_ACTIONS[name][1]
        if not self.has_view_or_change_permission(request, obj) or not getattr(
            self, f"has_{permission}_permission"
        )(request):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=obj.pk)
        done = reverse(f"{self.admin_site.name}:scheduler_schedule_change", args=[obj.pk])
        response = self._action_step(request, queryset, name, object_view=True)
        return response or HttpResponseRedirect(done)

    # --- the actions ------------------------------------------------------------------------
    @admin.action(description="Run selected schedules now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._action_step(request, queryset, "run", object_view=False)

    @admin.action(description="Pause selected schedules (with a note)…", permissions=["pause"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._action_step(request, queryset, "pause", object_view=False)

    @admin.action(description="Resume selected schedules", permissions=["pause"])
    def resume(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._action_step(request, queryset, "resume", object_view=False)

    @admin.action(description="Duplicate selected schedules (disabled copies)", permissions=["add"])
    def duplicate(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._action_step(request, queryset, "duplicate", object_view=False)

    @admin.action(description="Backfill selected schedules over a time range…", permissions=["run"])
    def backfill(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._action_step(request, queryset, "backfill", object_view=False)

    def _action_step(
        self, request: HttpRequest, queryset: QuerySet, name: str, *, object_view: bool
    ) -> HttpResponse | None:
        """Do the action, or show its confirmation page (with the note or the time range).
        From the list, run now, resume and duplicate need no confirmation."""
        confirmed = request.method == "POST" and (object_view or request.POST.get("post") == "yes")
        form: PauseForm | BackfillForm | None = None
        zone_name = None
        if name == "backfill":
            zones = sorted(set(queryset.values_list("timezone", flat=True)))
            if len(zones) > 1:
                self.message_user(
                    request,
                    "Backfill schedules of one time zone at a time; these use "
                    + ", ".join(zones)
                    + ".",
                    messages.ERROR,
                )
                return None
            zone_name = zones[0] if zones else "UTC"
            data = request.POST if confirmed else None
            form = BackfillForm(data, zone=zone_or_utc(zone_name), schedules=list(queryset))
        elif name == "pause":
            form = PauseForm(request.POST if confirmed else None)
        needs_page = form is not None or object_view
        if (confirmed or not needs_page) and (form is None or form.is_valid()):
            return getattr(self, f"_do_{name}")(request, queryset, form)
        return self._confirmation_page(
            request, queryset, name, form, object_view=object_view, zone_name=zone_name
        )

    def _confirmation_page(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        name: str,
        form: PauseForm | BackfillForm | None,
        *,
        object_view: bool,
        zone_name: str | None,
    ) -> HttpResponse:
        label = OBJECT_ACTIONS[name][0]
        objects = list(queryset)
        intro = {
            "run": "Queue one run of each schedule below now, outside its cron. The overlap "
            "policy still applies.",
            "pause": "Pause the schedules below: beat sends nothing until they are resumed. "
            "The note is shown on each schedule.",
            "resume": "Resume the schedules below: they run on their cron again.",
            "duplicate": "Copy the schedules below. Each copy starts disabled, so it does not "
            "fire before someone looks at it.",
            "backfill": "Queue the occurrences the cron had between the two times (after the "
            "first, up to and including the second) that have not run yet, oldest first, at "
            f"most {run_actions.MAX_BACKFILL}.",
        }[name]
        media = self.media + form.media if form is not None else self.media
        context = {
            **self.admin_site.each_context(request),
            "title": f"{label}: are you sure?",
            "subtitle": None,
            "opts": self.opts,
            "objects": objects,
            "form": form,
            "intro": intro,
            "zone_name": zone_name,
            "action_name": {"run": "run_now"}.get(name, name),
            "action_label": label,
            "object_view": object_view,
            "original": objects[0] if object_view and objects else None,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": media,
        }
        return TemplateResponse(
            request, "admin/scheduler/schedule/action_confirmation.html", context
        )

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        verb: str,
        act: Callable[[Schedule], str | None],
    ) -> None:
        """Apply ``act`` to each schedule; one message per schedule, errors included."""
        for schedule in queryset.select_related("periodic_task", "job"):
            try:
                text = act(schedule)
            except Exception as exc:
                logger.exception("could not %s schedule %s", verb, schedule.pk)
                self.message_user(
                    request, f"Could not {verb} {schedule.name}: {exc}", messages.ERROR
                )
                continue
            if text:
                self.message_user(request, text, messages.SUCCESS)

    def _do_run(self, request: HttpRequest, queryset: QuerySet, form: None) -> None:
        def act(schedule: Schedule) -> str | None:
            occurrence = run_actions.run_now(schedule)
            if occurrence.status in (JobRun.Status.SKIPPED, JobRun.Status.CANCELLED):
                self.message_user(
                    request,
                    f"{schedule.name}: not run ({status_label(occurrence.status).lower()}"
                    f"{': ' + occurrence.note if occurrence.note else ''}).",
                    messages.WARNING,
                )
                return None
            return (
                f"{schedule.name}: run #{occurrence.pk} {status_label(occurrence.status).lower()}."
            )

        self._each(request, queryset, "run", act)

    def _do_pause(self, request: HttpRequest, queryset: QuerySet, form: PauseForm) -> None:
        note = form.cleaned_data["note"]

        def act(schedule: Schedule) -> str:
            if schedule.is_paused:
                return f"{schedule.name} was already paused."
            services.pause(schedule, request.user, note)
            self.log_change(request, schedule, f"Paused. {note}".strip())
            return f"Paused {schedule.name}."

        self._each(request, queryset, "pause", act)

    def _do_resume(self, request: HttpRequest, queryset: QuerySet, form: None) -> None:
        def act(schedule: Schedule) -> str:
            if not schedule.is_paused:
                return f"{schedule.name} was not paused."
            services.resume(schedule)
            self.log_change(request, schedule, "Resumed.")
            return f"Resumed {schedule.name}."

        self._each(request, queryset, "resume", act)

    def _do_duplicate(
        self, request: HttpRequest, queryset: QuerySet, form: None
    ) -> HttpResponse | None:
        """Copy each schedule; one copy opens on its own page, to be looked at (and enabled)."""
        copies: list[Schedule] = []

        def act(schedule: Schedule) -> str:
            copy = services.duplicate(schedule)
            copies.append(copy)
            self.log_addition(request, copy, f"Duplicated from {schedule.name}.")
            url = reverse(f"{self.admin_site.name}:scheduler_schedule_change", args=[copy.pk])
            return format_html(
                'Duplicated {} as <a href="{}">{}</a> (disabled until enabled).',
                schedule.name,
                url,
                copy.name,
            )

        self._each(request, queryset, "duplicate", act)
        if len(copies) == 1 and queryset.count() == 1:
            url = reverse(f"{self.admin_site.name}:scheduler_schedule_change", args=[copies[0].pk])
            return HttpResponseRedirect(url)
        return None

    def _do_backfill(self, request: HttpRequest, queryset: QuerySet, form: BackfillForm) -> None:
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        for schedule in queryset.select_related("periodic_task", "job"):
            try:
                occurrences = run_actions.backfill(schedule, start, end)
            except ValueError as exc:
                self.message_user(request, f"{schedule.name}: {exc}", messages.ERROR)
                continue
            if occurrences:
                self.message_user(
                    request,
                    f"{schedule.name}: queued {len(occurrences)} occurrence(s), from "
                    f"{format_time(occurrences[0].scheduled_for, schedule.timezone)} to "
                    f"{format_time(occurrences[-1].scheduled_for, schedule.timezone)}.",
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    f"{schedule.name}: nothing to backfill in that range.",
                    messages.WARNING,
                )


admin.site.register(JobRun, JobRunAdmin)

# The lists need the window's width (the run history has eight columns): no navigation
# sidebar beside them at 1280 pixels. The breadcrumbs and the index lead everywhere.
admin.site.enable_nav_sidebar = False


# --- django-celery-beat's admin: superusers only --------------------------------------------
class SuperuserOnly:
    """Every permission of the wrapped admin is the superuser flag."""

    def _is_superuser(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_superuser(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_superuser(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_superuser(request)


class SchedulesNotice:
    """A notice atop each of django-celery-beat's pages: schedules are made in the Schedules
    admin (a catalog job, its checked parameters, its policies), which owns their entries."""

    change_list_template = "admin/scheduler/beat/change_list.html"
    change_form_template = "admin/scheduler/beat/change_form.html"
    #: The page the notice's template extends (django-celery-beat's own, if it has one).
    beat_form_template = "admin/change_form.html"

    def _notice(self) -> dict[str, Any]:
        return {"schedules_url": reverse(f"{self.admin_site.name}:scheduler_schedule_changelist")}

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {**(extra_context or {}), **self._notice()}
        return super().changelist_view(request, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        extra_context = {
            **(extra_context or {}),
            **self._notice(),
            "beat_form_template": self.beat_form_template,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)


def _managing_schedule(task: PeriodicTask | None) -> Schedule | None:
    if task is None or task.pk is None:
        return None
    return Schedule.objects.filter(periodic_task=task).first()


def _shown_kwargs(task: PeriodicTask) -> str:
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        return task.kwargs
    return json.dumps(masked_params(kwargs, task.task), indent=2)


class OfferedTaskSelect(beat_admin.TaskSelectWidget):
    """django-celery-beat's "Task (registered)" choices without the platform's own tasks."""

    def tasks_as_choices(self) -> tuple:
        return tuple(
            (value, label)
            for value, label in super().tasks_as_choices()
            if not value or not is_internal(value)
        )


class OfferedPeriodicTaskForm(beat_admin.PeriodicTaskForm):
    regtask = beat_admin.TaskChoiceField(
        label=beat_admin.PeriodicTaskForm.base_fields["regtask"].label,
        required=False,
        widget=OfferedTaskSelect,
    )


class SchedulePeriodicTaskAdmin(SchedulesNotice, SuperuserOnly, beat_admin.PeriodicTaskAdmin):
    """Raw cron entries. One that a schedule owns is read-only here (edit the schedule), and
    its secret parameters are masked. The platform's own tasks are not offered."""

    form = OfferedPeriodicTaskForm
    beat_form_template = beat_admin.PeriodicTaskAdmin.change_form_template

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _managing_schedule(obj) is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _managing_schedule(obj) is None

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if _managing_schedule(obj) is None:
            return fieldsets
        out = [(None, {"fields": ("managed_by",)})]
        for title, options in fieldsets:
            fields = tuple("kwargs_masked" if f == "kwargs" else f for f in options["fields"])
            fields = tuple(f for f in fields if f != "regtask")
            out.append((title, {**options, "fields": fields}))
        return out

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "managed_by", "kwargs_masked")

    @admin.display(description="managed by")
    def managed_by(self, obj: PeriodicTask) -> str:
        schedule = _managing_schedule(obj)
        if schedule is None:
            return NONE
        url = reverse(f"{self.admin_site.name}:scheduler_schedule_change", args=[schedule.pk])
        return format_html(
            'the schedule <a href="{}">{}</a>; change it there, and this entry follows.',
            url,
            schedule.name,
        )

    @admin.display(description="keyword arguments")
    def kwargs_masked(self, obj: PeriodicTask) -> str:
        return format_html("<pre>{}</pre>", _shown_kwargs(obj))


class MaskedPeriodicTaskInline(beat_admin.PeriodicTaskInline):
    fields = ("name", "task", "args", "kwargs_masked")
    readonly_fields = fields

    @admin.display(description="kwargs")
    def kwargs_masked(self, obj: PeriodicTask) -> str:
        return _shown_kwargs(obj)


def _superuser_only(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    attrs: dict[str, Any] = {"__module__": __name__}
    if getattr(base, "inlines", None):
        attrs["inlines"] = [
            MaskedPeriodicTaskInline if inline is beat_admin.PeriodicTaskInline else inline
            for inline in base.inlines
        ]
    return type(f"SuperuserOnly{base.__name__}", (SchedulesNotice, SuperuserOnly, base), attrs)


class ScheduleCrontabAdmin(SchedulesNotice, SuperuserOnly, beat_admin.CrontabScheduleAdmin):
    """Raw crontabs. One a schedule's cron entry uses is read-only here: editing it would
    leave the schedule's cron behind, deleting it would delete the schedule."""

    inlines = [MaskedPeriodicTaskInline]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and not _used_by_schedule(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and not _used_by_schedule(obj)


def _used_by_schedule(crontab: CrontabSchedule | None) -> bool:
    if crontab is None or crontab.pk is None:
        return False
    return Schedule.objects.filter(periodic_task__crontab=crontab).exists()


BEAT_ADMINS: dict[type, type[admin.ModelAdmin]] = {
    PeriodicTask: SchedulePeriodicTaskAdmin,
    CrontabSchedule: ScheduleCrontabAdmin,
    IntervalSchedule: _superuser_only(beat_admin.IntervalScheduleAdmin),
    SolarSchedule: _superuser_only(beat_admin.SolarScheduleAdmin),
    ClockedSchedule: _superuser_only(beat_admin.ClockedScheduleAdmin),
}

for _model, _model_admin in BEAT_ADMINS.items():
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
