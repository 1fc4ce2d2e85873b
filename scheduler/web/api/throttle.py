"""The rate limit on endpoints that queue work (trigger, run now, upload): at most N requests
per user per fixed window, counted in the database by one upsert, so every web process and
host counts the same. A refused request answers 429 with ``Retry-After``."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from ninja.throttling import BaseThrottle

from scheduler.web.models import RateWindow

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")
#: Windows older than this are deleted (when a client opens a new window).
KEEP = timedelta(days=1)


def parse_rate(text: str) -> tuple[int, int] | None:
    """``"60/min"`` -> (60, 60); empty or ``"off"`` -> None (no limit)."""
    if not text or text.strip().lower() in {"off", "none", "0"}:
        return None
    match = _RATE.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"a rate is like '60/min' (units: s, min, hour, day), not {text!r}")
    return int(match.group(1)), _UNITS[match.group(2)]


def hit(key: str, period: int, now: datetime) -> tuple[int, datetime]:
    """Count one request for ``key`` in the current window: (count so far, window start)."""
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % period, tz=now.tzinfo)
    table = RateWindow._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, window_start, count) VALUES (%s, %s, 1) "
            f"ON CONFLICT (key, window_start) DO UPDATE SET count = {table}.count + 1 "
            "RETURNING count",
            [key, start],
        )
        count = cursor.fetchone()[0]
    if count == 1:  # a new window: the client's old ones can go
        RateWindow.objects.filter(key=key, window_start__lt=now - KEEP).delete()
    return count, start


class UserRateThrottle(BaseThrottle):
    """``settings.API_TRIGGER_RATE`` requests per user (per client address without one)."""

    def __init__(self, scope: str = "trigger", setting: str = "API_TRIGGER_RATE"):
        self.scope, self.setting = scope, setting
        # Per thread: wait() follows allow_request() in the thread serving the request.
        self._local = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        rate = parse_rate(getattr(settings, self.setting, ""))
        if rate is None:
            return True
        limit, period = rate
        user = getattr(request, "user", None)
        who = f"user:{user.pk}" if user is not None and user.is_authenticated else None
        key = f"{self.scope}:{who or 'ip:' + (self.get_ident(request) or '?')}"
        now = timezone.now()
        count, start = hit(key, period, now)
        if count <= limit:
            return True
        self._local.wait = max((start + timedelta(seconds=period) - now).total_seconds(), 1.0)
        return False

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)
