"""Alert configuration as the rules see it: a schedule's effective policy (its overrides over
the ALERTS_* settings) and the channels, cached per process for a short while.

The cache keeps a finishing run cheap (the run that needs nothing never reads a policy or a
channel). Saving a channel or a policy clears it in the process that saved; other processes
see the change within ``TTL`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Min

from scheduler.alert_models import AlertChannel, AlertPolicy
from scheduler.alerts.rules import Policy

#: Seconds a process trusts what it read.
TTL = 30.0
#: Policies kept per process, at most (schedules with overrides that ran lately).
MAX_POLICIES = 10_000

_lock = threading.Lock()
_values: dict[Any, tuple[float, Any]] = {}


def clear(*args: Any, **kwargs: Any) -> None:
    """Forget everything (connected to saves of channels and policies)."""
    with _lock:
        _values.clear()


def _cached(key: Any, load: Any) -> Any:
    now = time.monotonic()
    with _lock:
        hit = _values.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    value = load()
    with _lock:
        if len(_values) >= MAX_POLICIES:
            _values.clear()
        _values[key] = (now + TTL, value)
    return value


def defaults() -> Policy:
    return Policy(
        on_failure=settings.ALERTS_ON_FAILURE,
        failure_threshold=max(1, settings.ALERTS_FAILURE_THRESHOLD),
        on_recovery=settings.ALERTS_ON_RECOVERY,
        on_missed=settings.ALERTS_ON_MISSED,
        grace=max(1, settings.ALERTS_DEFAULT_GRACE),
        max_runtime=max(0, settings.ALERTS_DEFAULT_MAX_RUNTIME),
        reminder_interval=max(0, settings.ALERTS_REMINDER_INTERVAL),
    )


def effective(row: AlertPolicy | None, channel_ids: Iterable[int] = ()) -> Policy:
    """``row``'s overrides over the defaults."""
    base = defaults()
    if row is None:
        return base

    def pick(name: str) -> Any:
        value = getattr(row, name)
        return getattr(base, name) if value is None else value

    return Policy(
        on_failure=pick("on_failure"),
        failure_threshold=max(1, pick("failure_threshold")),
        on_recovery=pick("on_recovery"),
        on_missed=pick("on_missed"),
        grace=max(1, pick("grace")),
        max_runtime=pick("max_runtime"),
        reminder_interval=pick("reminder_interval"),
        channel_ids=tuple(sorted(channel_ids)),
    )


def policy_for(schedule_id: int) -> Policy:
    return _cached(("policy", schedule_id), lambda: _load_policies([schedule_id])[schedule_id])


def policies_for(schedule_ids: Iterable[int]) -> dict[int, Policy]:
    """Several schedules' policies in two queries (the watchdog's batches); not cached."""
    return _load_policies(list(schedule_ids))


def _load_policies(ids: list[int]) -> dict[int, Policy]:
    rows = AlertPolicy.objects.filter(pk__in=ids).prefetch_related("channels").in_bulk()
    return {
        i: effective(rows.get(i), [c.pk for c in rows[i].channels.all()] if i in rows else ())
        for i in ids
    }


def channels() -> dict[int, AlertChannel]:
    """Every enabled channel, by id."""
    return _cached("channels", lambda: AlertChannel.objects.filter(enabled=True).in_bulk())


def channels_of(policy: Policy) -> list[AlertChannel]:
    """Where a schedule's alerts go: its own picks, else the default channels."""
    enabled = channels()
    if policy.channel_ids:
        return [enabled[i] for i in policy.channel_ids if i in enabled]
    return [c for c in enabled.values() if c.is_default]


def default_channels() -> list[AlertChannel]:
    return [c for c in channels().values() if c.is_default]


def sentry_in_use() -> bool:
    """Whether any enabled channel is a Sentry one (else no check-ins are even considered)."""
    return any(c.kind == AlertChannel.Kind.SENTRY for c in channels().values())


def min_grace() -> int:
    """The shortest grace period any schedule has: the watchdog's first, indexed cut."""
    return _cached("min_grace", lambda: _min_override("grace", defaults().grace))


def min_max_runtime() -> int:
    """The shortest positive maximum runtime any schedule has; 0 when none has one."""

    def load() -> int:
        base = defaults().max_runtime
        lowest = AlertPolicy.objects.filter(max_runtime__gt=0).aggregate(m=Min("max_runtime"))
        candidates = [v for v in (base, lowest["m"]) if v]
        return min(candidates) if candidates else 0

    return _cached("min_max_runtime", load)


def _min_override(field: str, base: int) -> int:
    lowest = AlertPolicy.objects.filter(**{f"{field}__isnull": False}).aggregate(m=Min(field))
    return min(v for v in (base, lowest["m"]) if v is not None)
