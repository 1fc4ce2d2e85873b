"""Completion callbacks in the admin: the record of every one (read-only, for on-call: where
it went without the URL's secret parts, how it went, what was sent), and the table of an
occurrence's callbacks on its run's page."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from jobs_catalog.admin import ReadOnlyAdminMixin
from scheduler.alerts.admin import DeliveryTimes, run_link
from scheduler.alerts.models import CallbackDelivery
from scheduler.formatting import NONE, format_time, monospace

#: A delivery's status, in the colours of the run statuses.
BADGE_CSS = {"pending": "pending", "sent": "succeeded", "failed": "failed"}


def status_badge(status: str) -> str:
    return format_html(
        '<span class="scheduler-badge scheduler-status-{}">{}</span>',
        BADGE_CSS.get(status, "pending"),
        status,
    )


def answer(delivery: CallbackDelivery) -> str:
    """The receiver's status and the last error, as one cell."""
    code = f"HTTP {delivery.response_status}" if delivery.response_status else ""
    text = " · ".join(part for part in (code, delivery.last_error) if part)
    return text or NONE


def occurrence_callbacks(first_attempt_id: int) -> str:
    """The callbacks of the occurrence whose first attempt is ``first_attempt_id`` (one
    indexed read), as a small table: where, for which end, how it went."""
    rows = [
        (
            d.destination,
            d.run_status,
            status_badge(d.status),
            f"{d.attempts} attempt(s)",
            format_time(d.sent_at) if d.sent_at else NONE,
            answer(d),
        )
        for d in CallbackDelivery.objects.filter(occurrence_id=first_attempt_id)
        .select_related("channel")
        .order_by("created_at", "id")
    ]
    if not rows:
        return "none"
    return format_html(
        '<table class="scheduler-attempts"><tbody>{}</tbody></table>',
        format_html_join("", "<tr>" + "<td>{}</td>" * len(rows[0]) + "</tr>", rows),
    )


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(DeliveryTimes, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created",
        "run",
        "run_status",
        "where",
        "status_column",
        "attempts",
        "answer_column",
        "sent",
    )
    list_filter = ("status", "run_status", "target", "channel")
    list_select_related = ("channel",)
    search_fields = ("=run_id", "=occurrence_id")
    search_help_text = "A run's id (any attempt)."
    fields = (
        "created",
        "run",
        "occurrence",
        "run_status",
        "where",
        "status_column",
        "attempts",
        "answer_column",
        "next_attempt",
        "sent",
        "payload_display",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("scheduler/admin.css",)}

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        if not term.isdigit():
            return queryset.none(), False
        return queryset.filter(run_id=int(term)) | queryset.filter(occurrence_id=int(term)), False

    @admin.display(description="attempt that ended")
    def run(self, obj: CallbackDelivery) -> str:
        return run_link(obj.run_id)

    @admin.display(description="run (first attempt)")
    def occurrence(self, obj: CallbackDelivery) -> str:
        return run_link(obj.occurrence_id)

    @admin.display(description="to")
    def where(self, obj: CallbackDelivery) -> str:
        return obj.destination

    @admin.display(description="status", ordering="status")
    def status_column(self, obj: CallbackDelivery) -> str:
        return status_badge(obj.status)

    @admin.display(description="answer / last error")
    def answer_column(self, obj: CallbackDelivery) -> str:
        return answer(obj)

    @admin.display(description="what was sent")
    def payload_display(self, obj: CallbackDelivery) -> str:
        if not obj.payload:
            return "not built yet (at the first attempt)"
        return monospace(json.dumps(obj.payload, indent=2, sort_keys=True))
