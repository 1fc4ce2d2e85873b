"""The platform's admin site: Django's, with the overview as its index and the overview's
actions (acknowledge an incident, spread a pile-up with jitter, recompute the load ahead)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from scheduler.alerts import incidents
from scheduler.alerts.models import Incident
from scheduler.clock import get_clock
from scheduler.formatting import format_time
from scheduler.schedules import forecast
from scheduler.schedules.rules import MAX_JITTER
from scheduler.web import overview


class JobsAdminSite(admin.AdminSite):
    site_header = "Scheduled jobs"
    site_title = "Scheduled jobs"
    index_title = "Overview"
    index_template = "admin/scheduler/overview.html"
    site_url = None  # the platform serves no site besides the admin: no "View site" link

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"overview": overview.build(request, get_clock().now()), **(extra_context or {})}
        return super().index(request, context)

    def get_urls(self) -> list:
        wrap = self.admin_view
        return [
            path(
                "overview/incidents/<int:pk>/acknowledge/",
                wrap(require_POST(self.acknowledge)),
                name="overview_acknowledge",
            ),
            path("overview/pileup/", wrap(self.spread_pileup), name="overview_pileup"),
            path(
                "overview/forecast/",
                wrap(require_POST(self.recompute_forecast)),
                name="overview_forecast",
            ),
            *super().get_urls(),
        ]

    def _back(self, request: HttpRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"{self.name}:index"))

    def acknowledge(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm("scheduler.acknowledge_incident"):
            raise PermissionDenied
        incident = get_object_or_404(Incident, pk=pk)
        if incidents.acknowledge([incident], request.user, timezone.now()):
            messages.success(request, f"Acknowledged: {incident.title}. No reminders for it.")
        else:
            messages.warning(request, "Nothing to acknowledge: it is resolved or acknowledged.")
        return self._back(request)

    def recompute_forecast(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("scheduler.view_schedule"):
            raise PermissionDenied
        forecast.refresh(get_clock().now())
        messages.success(request, "The load ahead was recomputed.")
        return self._back(request)

    def spread_pileup(self, request: HttpRequest) -> HttpResponse:
        """GET: what setting jitter on a pile-up's schedules would do; POST: do it."""
        if not request.user.has_perm("scheduler.change_schedule"):
            raise PermissionDenied
        now = get_clock().now()
        try:
            at = datetime.fromisoformat(request.POST.get("at") or request.GET.get("at", ""))
            if at.tzinfo is None:
                raise ValueError
        except ValueError:
            messages.error(
                request, "Which pile-up? The link is incomplete; start from the overview."
            )
            return self._back(request)
        schedules = forecast.pileup_schedules(at, now)
        count = schedules.count()
        try:
            seconds = int(request.POST.get("jitter") or forecast.suggested_jitter(count))
        except ValueError:
            seconds = -1
        if not 1 <= seconds <= MAX_JITTER:
            messages.error(request, f"Jitter must be between 1 and {MAX_JITTER} seconds.")
            return self._back(request)
        if request.method == "POST":
            changed = forecast.set_jitter(schedules, seconds)
            forecast.refresh(get_clock().now())
            messages.success(
                request,
                f"Jitter of {seconds} s set on {changed:,} schedule(s) due at "
                f"{format_time(at)}; each now starts at its own moment within it.",
            )
            return self._back(request)
        context = {
            **self.each_context(request),
            "title": "Spread a pile-up",
            "at": at,
            "count": count,
            "jitter": seconds,
            "max_jitter": MAX_JITTER,
            "sample": list(schedules.order_by("name").values_list("name", flat=True)[:20]),
        }
        return TemplateResponse(request, "admin/scheduler/overview_pileup.html", context)
