"""The benchmark's URLs: the platform's admin at /admin/, and at /stock/ the same run history
list with Django's stock paging (a ``COUNT(*)`` per page view, ``show_full_result_count``,
numbered pages): the baseline it is measured against. Everything else (filters, search,
ordering, the columns it reads) is the platform's, so the difference is the counting."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import path

from scheduler.runs.models import JobRun
from scheduler.schedules.models import Schedule
from scheduler.web.admin import ScheduleAdmin
from scheduler.web.history_admin import LIST_FIELDS, JobRunAdmin


class CountingChangeList(ChangeList):
    """Django's change list, reading the same columns as the platform's."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        return super().get_queryset(request, exclude_parameters).only(*LIST_FIELDS)


class StockPagingJobRunAdmin(JobRunAdmin):
    show_full_result_count = True
    list_max_show_all = 200

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CountingChangeList


stock_site = admin.AdminSite(name="stock")
stock_site.register(JobRun, StockPagingJobRunAdmin)
stock_site.register(Schedule, ScheduleAdmin)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("stock/", stock_site.urls),
]
