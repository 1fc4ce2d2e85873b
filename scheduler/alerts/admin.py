"""Alerting in the admin: channels (secrets never shown) with a "send test alert" action,
incidents (open / acknowledged / resolved, with links to the runs) with an "acknowledge"
action, the record of every delivery, and a schedule's alert overrides (an inline of the
schedule's page)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from jobs_catalog.admin import ReadOnlyAdminMixin
from scheduler.alerts import incidents, tasks
from scheduler.alerts import messages as alert_messages
from scheduler.alerts.forms import (
    KIND_FIELDS,
    AlertChannelForm,
    AlertPolicyForm,
    masked_destination,
    page_fields,
)
from scheduler.alerts.models import (
    NOTIFIED_NOBODY,
    AlertChannel,
    AlertDelivery,
    AlertPolicy,
    Incident,
)
from scheduler.formatting import NONE, format_time, monospace

# --- channels -----------------------------------------------------------------------------
#: The fieldsets of the kinds' fields: (title, fields); a fieldset is shown for the kinds
#: that use its first field (see :data:`scheduler.alerts.forms.KIND_FIELDS`).
CHANNEL_FIELDSETS = (
    ("Email", ("recipients",)),
    ("Webhook", ("url", "webhook_format", "signing_secret", "clear_signing_secret")),
    ("Sentry", ("sentry_dsn", "clear_sentry_dsn")),
    ("Delivery", ("timeout",)),
)


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ("name", "kind", "destination", "enabled", "is_default")
    list_filter = ("kind", "enabled", "is_default")
    search_fields = ("name",)
    actions = ("send_test_alert",)

    class Media:
        # Shows the fieldsets of the kind picked, as it is picked (a new channel's page).
        js = ("scheduler/channel_kind.js",)
        css = {"all": ("scheduler/admin.css",)}

    def get_fieldsets(self, request: HttpRequest, obj: AlertChannel | None = None) -> list:
        """A new channel's page has every kind's fieldsets (the script shows the picked
        kind's); a stored channel's page only its own kind's."""
        on_page = page_fields(obj)
        fieldsets: list = [(None, {"fields": ["name", "kind", "enabled", "is_default"]})]
        for title, names in CHANNEL_FIELDSETS:
            shown = [name for name in names if name in on_page]
            if not shown:
                continue
            kinds = [kind for kind, used in KIND_FIELDS.items() if names[0] in used]
            classes = ["scheduler-kind", *(f"scheduler-kind-{kind}" for kind in kinds)]
            fieldsets.append((title, {"fields": shown, "classes": classes}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: AlertChannel | None = None) -> tuple:
        # A channel keeps its kind (its page holds that kind's fields only): make another.
        return ("kind",) if obj is not None else ()

    def has_test_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.test_alertchannel")

    @admin.display(description="sends to")
    def destination(self, obj: AlertChannel) -> str:
        return masked_destination(obj)

    @admin.action(description="Send a test alert to the selected channels", permissions=["test"])
    def send_test_alert(self, request: HttpRequest, queryset: QuerySet) -> None:
        for channel in queryset:
            delivery = tasks.send_test(channel, alert_messages.for_test(channel.name))
            if delivery.status == AlertDelivery.Status.SENT:
                self.message_user(request, f"{channel.name}: test alert sent.", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"{channel.name}: the test alert failed: {delivery.last_error}",
                    messages.ERROR,
                )


# --- incidents ----------------------------------------------------------------------------
class IncidentStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [
            ("open", "Open (acknowledged or not)"),
            ("unacknowledged", "Open, not acknowledged"),
            ("resolved", "Resolved"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "open":
            return queryset.filter(resolved_at__isnull=True)
        if value == "unacknowledged":
            return queryset.filter(resolved_at__isnull=True, acknowledged_at__isnull=True)
        if value == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


NOTIFIED_NOBODY_HELP = (
    "no channel applied when it opened, nor since. While it is open and not acknowledged, "
    "the next run that counts on it (a failure, a skipped run) announces it to the channels "
    "that apply then."
)


def _badge(css: str, text: str) -> str:
    return format_html('<span class="scheduler-badge scheduler-status-{}">{}</span>', css, text)


class NotifiedFilter(admin.SimpleListFilter):
    title = "notified"
    parameter_name = "notified"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("nobody", "Notified nobody"), ("someone", "Notified someone")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "nobody":
            return queryset.notified_nobody()
        if self.value() == "someone":
            return queryset.exclude(NOTIFIED_NOBODY)
        return queryset


def _runs_link(schedule_id: int | None, label: str = "runs") -> str:
    if schedule_id is None:
        return NONE
    url = reverse("admin:scheduler_jobrun_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode({"schedule": schedule_id}), label)


def run_link(run_id: int | None) -> str:
    if not run_id:
        return NONE
    return format_html(
        '<a href="{}">#{}</a>', reverse("admin:scheduler_jobrun_change", args=[run_id]), run_id
    )


class DeliveryTimes:
    """A delivery's times in the admin's one format."""

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: AlertDelivery) -> str:
        return format_time(obj.created_at)

    @admin.display(description="sent", ordering="sent_at")
    def sent(self, obj: AlertDelivery) -> str:
        return format_time(obj.sent_at)

    @admin.display(description="next attempt")
    def next_attempt(self, obj: AlertDelivery) -> str:
        return format_time(obj.next_attempt_at)


class DeliveryInline(DeliveryTimes, ReadOnlyAdminMixin, admin.TabularInline):
    model = AlertDelivery
    fields = ("created", "channel_name", "event", "status", "attempts", "last_error", "sent")
    readonly_fields = fields
    extra = 0
    ordering = ("-created_at",)
    verbose_name_plural = "messages sent (or tried)"


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "title",
        "state_badge",
        "kind",
        "schedule_link",
        "first_seen",
        "last_seen",
        "count",
        "notified",
        "runs",
    )
    list_filter = (
        IncidentStateFilter,
        NotifiedFilter,
        "kind",
        ("schedule", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("schedule",)
    search_fields = ("title", "schedule__name")
    actions = ("acknowledge",)
    inlines = (DeliveryInline,)
    fields = (
        "title",
        "state_badge",
        "kind",
        "schedule_link",
        "count",
        "first_seen",
        "last_seen",
        "notified_detail",
        "last_error_display",
        "runs",
        "first_run",
        "last_run",
        "acknowledged",
        "resolved",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("scheduler/admin.css",)}

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.acknowledge_incident")

    @admin.action(description="Acknowledge the selected incidents", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = incidents.acknowledge(queryset, request.user, timezone.now())
        self.message_user(
            request,
            f"{done} incident(s) acknowledged; no reminders for them."
            if done
            else "Nothing to acknowledge: the selected incidents are resolved or acknowledged.",
            messages.SUCCESS if done else messages.WARNING,
        )

    @admin.display(description="state")
    def state_badge(self, obj: Incident) -> str:
        css = {"open": "failed", "acknowledged": "running", "resolved": "succeeded"}[obj.state]
        return _badge(css, obj.state)

    @admin.display(description="schedule", ordering="schedule__name")
    def schedule_link(self, obj: Incident) -> str:
        if obj.schedule_id is None:
            return "the platform" if obj.key.startswith("platform:") else "(deleted)"
        url = reverse("admin:scheduler_schedule_change", args=[obj.schedule_id])
        return format_html('<a href="{}">{}</a>', url, obj.schedule.name)

    @admin.display(description="first seen", ordering="opened_at")
    def first_seen(self, obj: Incident) -> str:
        return format_time(obj.opened_at)

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen(self, obj: Incident) -> str:
        return format_time(obj.last_seen_at)

    @admin.display(description="notified", ordering="last_notified_at")
    def notified(self, obj: Incident) -> str:
        if obj.notified_nobody:
            return _badge("failed", "nobody")
        return format_time(obj.last_notified_at)

    @admin.display(description="notified")
    def notified_detail(self, obj: Incident) -> str:
        if obj.notified_nobody:
            return format_html("{} {}", _badge("failed", "nobody"), NOTIFIED_NOBODY_HELP)
        return f"last {format_time(obj.last_notified_at)} (the messages are listed below)"

    @admin.display(description="runs")
    def runs(self, obj: Incident) -> str:
        return _runs_link(obj.schedule_id)

    @admin.display(description="first run")
    def first_run(self, obj: Incident) -> str:
        return run_link(obj.first_run_id)

    @admin.display(description="last run")
    def last_run(self, obj: Incident) -> str:
        return run_link(obj.last_run_id)

    @admin.display(description="last error")
    def last_error_display(self, obj: Incident) -> str:
        return monospace(obj.last_error)

    @admin.display(description="acknowledged")
    def acknowledged(self, obj: Incident) -> str:
        if obj.acknowledged_at is None:
            return "no"
        return f"{format_time(obj.acknowledged_at)} by {obj.acknowledged_by or 'someone'}"

    @admin.display(description="resolved")
    def resolved(self, obj: Incident) -> str:
        if obj.resolved_at is None:
            return "no"
        return f"{format_time(obj.resolved_at)}: {obj.resolution}"


# --- deliveries ---------------------------------------------------------------------------
@admin.register(AlertDelivery)
class AlertDeliveryAdmin(DeliveryTimes, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created",
        "channel_name",
        "event",
        "incident_link",
        "status",
        "attempts",
        "last_error",
        "sent",
    )
    list_filter = ("status", "event", "channel")
    list_select_related = ("incident",)
    fields = (
        "created",
        "channel_name",
        "event",
        "incident_link",
        "status",
        "attempts",
        "last_error",
        "next_attempt",
        "sent",
        "payload_display",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("scheduler/admin.css",)}

    @admin.display(description="incident")
    def incident_link(self, obj: AlertDelivery) -> str:
        if obj.incident_id is None:
            return NONE
        url = reverse("admin:scheduler_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">{}</a>', url, obj.incident.title)

    @admin.display(description="what was sent")
    def payload_display(self, obj: AlertDelivery) -> str:
        return monospace(json.dumps(obj.payload, indent=2, sort_keys=True))


# --- a schedule's overrides (an inline of the schedule admin) ------------------------------
class AlertPolicyInline(admin.StackedInline):
    model = AlertPolicy
    form = AlertPolicyForm
    can_delete = True
    max_num = 1
    extra = 1
    verbose_name = "alert rules"
    verbose_name_plural = "alerts (empty fields follow the platform defaults)"
    fields = (
        ("on_failure", "failure_threshold"),
        ("on_recovery", "on_missed"),
        ("grace", "max_runtime"),
        "reminder_interval",
        "channels",
        "callback_channel",
    )
