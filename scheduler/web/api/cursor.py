"""Keyset pagination: a page is the rows after the last one shown, in the index's own order,
found by one indexed range read. No OFFSET (its cost grows with the page number) and no COUNT
(its cost grows with the table)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from scheduler.web.api.errors import ApiError


def encode(moment: datetime | None, pk: int) -> str:
    text = f"{moment.isoformat() if moment else ''}|{pk}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime | None, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, pk = text.rsplit("|", 1)
        return (datetime.fromisoformat(moment) if moment else None), int(pk)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "That cursor is not one this API gave.") from None


def page(
    rows: QuerySet, cursor: str | None, limit: int, field: str = "scheduled_for"
) -> tuple[list[Any], str | None]:
    """Up to ``limit`` rows ordered by ``-field, -id`` after ``cursor``, and the cursor of
    the next page (None when this is the last)."""
    if cursor:
        moment, pk = decode(cursor)
        if moment is None:
            rows = rows.filter(pk__lt=pk)
        else:
            rows = rows.filter(Q(**{f"{field}__lt": moment}) | Q(**{field: moment, "pk__lt": pk}))
    items = list(rows.order_by(f"-{field}", "-id")[: limit + 1])
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    return items, encode(getattr(last, field), last.pk)
