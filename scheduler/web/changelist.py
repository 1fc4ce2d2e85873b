"""A change list for tables too big to count: no ``COUNT(*)``, no "show all", and only
orderings an index serves.

Django's change list counts the filtered rows on every page view (and, with
``show_full_result_count``, the whole table too); on millions of rows that count is most of
the page's time. This one reads the page plus one row: that extra row says whether a next
page exists, and the pages offer "previous" and "next" instead of numbered links.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


class LookaheadPaginator(Paginator):
    """Pages of ``per_page`` rows, each read with one row more; never counts.

    ``count`` is what is known after :meth:`read`: the rows up to the end of the page read,
    plus one when another follows. ``num_pages`` follows from it.
    """

    def __init__(self, object_list: Any, per_page: int, *args: Any, **kwargs: Any):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.rows: list[Any] = []
        self.number = 1
        self.has_more = False
        self._known = 0

    def read(self, number: int) -> list[Any]:
        self.number = max(int(number), 1)
        offset = (self.number - 1) * self.per_page
        rows = list(self.object_list[offset : offset + self.per_page + 1])
        self.has_more = len(rows) > self.per_page
        self.rows = rows[: self.per_page]
        self._known = offset + len(self.rows) + (1 if self.has_more else 0)
        return self.rows

    @property
    def count(self) -> int:  # type: ignore[override]
        return self._known


class UncountedChangeList(ChangeList):
    #: The ordering fields, newest first, and the field people may sort by (both ways).
    time_ordering: tuple[str, ...] = ()

    def get_ordering(self, request: HttpRequest, queryset: QuerySet) -> list[Any]:
        """Only the index's order, forwards or backwards: a sort the index cannot serve
        would read and sort every matching row. Any other ``o`` is ignored."""
        newest_first = list(self.time_ordering)
        first = self.params.get(ORDER_VAR, "").split(".")[0]
        _, descending, index = first.rpartition("-")
        column = self._time_column()
        if column is not None and index == str(column) and not descending:
            return [field.removeprefix("-") for field in newest_first]
        return newest_first

    def _time_column(self) -> int | None:
        """The list_display index of the column sorted by the time field."""
        field = self.time_ordering[0].removeprefix("-") if self.time_ordering else None
        for index, name in enumerate(self.list_display):
            if field is not None and self.get_ordering_field(name) == field:
                return index
        return None

    def get_results(self, request: HttpRequest) -> None:
        # Not ModelAdmin.get_paginator: the admin's other pages (the log of changes) count
        # small tables and keep Django's paginator.
        paginator = LookaheadPaginator(self.queryset, self.list_per_page)
        self.result_list = paginator.read(self.page_num)
        self.page_num = paginator.number
        self.result_count = paginator.count
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = bool(self.result_list)
        self.can_show_all = False
        self.multi_page = paginator.has_more or paginator.number > 1
        self.paginator = paginator
        self.has_next = paginator.has_more
        self.has_previous = paginator.number > 1
        self.next_url = self.get_query_string({PAGE_VAR: paginator.number + 1})
        self.previous_url = self.get_query_string({PAGE_VAR: paginator.number - 1})
        self.first_url = self.get_query_string(remove=[PAGE_VAR])
