"""The cron preview: a schedule's expression in words and its next fire times, for the admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from scheduler.formatting import format_time
from scheduler.policies import cron

#: How many upcoming fire times the preview lists.
PREVIEW_COUNT = 5
#: Longest cron expression or zone name the preview looks at.
MAX_INPUT = 200


def format_fire_time(moment: datetime) -> str:
    """``Sun 2026-03-29 03:00:00 CEST (UTC+02:00)``: the admin's one time format, after the
    weekday; the offset tells repeated wall times apart where the abbreviation does not."""
    offset = moment.strftime("%z")
    offset = f" (UTC{offset[:3]}:{offset[3:]})" if offset else ""
    return f"{moment:%a} {format_time(moment, moment.tzinfo)}{offset}"


def preview_payload(expr: str, tz: str, now: datetime | None = None) -> dict[str, Any]:
    """``{description, next, next_display, timezone, error}`` for ``expr`` in zone ``tz``.

    ``next`` holds ISO 8601 instants with the zone's offset; ``error`` is ``None`` or the
    reason nothing could be computed.
    """
    expr, tz = (expr or "").strip(), (tz or "").strip() or "UTC"
    payload: dict[str, Any] = {
        "description": "",
        "next": [],
        "next_display": [],
        "timezone": tz,
        "error": None,
    }
    if len(expr) > MAX_INPUT or len(tz) > MAX_INPUT:
        payload["error"] = "Too long."
        return payload
    try:
        parsed = cron.parse(expr)
    except cron.CronError as exc:
        payload["error"] = str(exc)
        return payload
    payload["description"] = cron.describe(parsed)
    try:
        cron.validate_timezone(tz)
    except cron.CronError as exc:
        payload["error"] = str(exc)
        return payload
    times = cron.preview(parsed, tz, now or timezone.now(), count=PREVIEW_COUNT)
    if not times:
        payload["error"] = "This expression never fires."
    payload["next"] = [moment.isoformat() for moment in times]
    payload["next_display"] = [format_fire_time(moment) for moment in times]
    return payload


def cron_preview(request: HttpRequest) -> JsonResponse:
    """``GET ?cron=...&timezone=...``: the preview as JSON. The admin mounts it behind its
    own login and permission checks."""
    payload = preview_payload(request.GET.get("cron", ""), request.GET.get("timezone", ""))
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return response
