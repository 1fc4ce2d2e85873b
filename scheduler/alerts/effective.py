"""Alert configuration as the rules see it: a schedule's effective policy (its overrides over
the ALERTS_* settings) and the channels.

Two ways to read it, on purpose:

- Deciding and announcing an incident reads the database (:func:`policy_for`,
  :func:`policies_for`, :class:`Channels`): it is rare (a failure, an open incident, a
  watchdog finding), so a query then is cheap, and a channel or policy saved a moment ago in
  any process counts at once.
- Sentry check-ins happen on every run, so they read a per-process cache
  (:func:`cached_policy_for`, :func:`sentry_in_use`): a run that needs no alert reads nothing.
  Saving a channel or a policy clears it in the process that saved; other processes see the
  change within ``CACHE_TTL`` seconds. The watchdog's first cuts (:func:`min_grace`,
  :func:`min_max_runtime`) share it: a cut only narrows a read; every row found is held
  against its schedule's policy as the database has it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Min

from scheduler.alerts.models import AlertChannel, AlertPolicy
from scheduler.alerts.rules import Policy

#: Seconds a process trusts what it read for check-ins and the watchdog's cuts.
CACHE_TTL = 30.0
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
        _values[key] = (now + CACHE_TTL, value)
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
    """A schedule's policy as the database has it now (one or two queries)."""
    return _load_policies([schedule_id])[schedule_id]


def cached_policy_for(schedule_id: int) -> Policy:
    """A schedule's policy, at most ``CACHE_TTL`` seconds old (for check-ins)."""
    return _cached(("policy", schedule_id), lambda: policy_for(schedule_id))


def policies_for(schedule_ids: Iterable[int]) -> dict[int, Policy]:
    """Several schedules' policies in two queries (the watchdog's batches); not cached."""
    return _load_policies(list(schedule_ids))


def _load_policies(ids: list[int]) -> dict[int, Policy]:
    rows = AlertPolicy.objects.filter(pk__in=ids).prefetch_related("channels").in_bulk()
    return {
        i: effective(rows.get(i), [c.pk for c in rows[i].channels.all()] if i in rows else ())
        for i in ids
    }


def _enabled_channels() -> dict[int, AlertChannel]:
    return AlertChannel.objects.filter(enabled=True).in_bulk()


def _pick(enabled: dict[int, AlertChannel], policy: Policy) -> list[AlertChannel]:
    """Where a schedule's alerts go: its own picks, else the default channels."""
    if policy.channel_ids:
        return [enabled[i] for i in policy.channel_ids if i in enabled]
    return [c for c in enabled.values() if c.is_default]


class Channels:
    """The enabled channels as the database has them, read when first needed (one query)
    and then kept for one evaluation, so a watchdog pass opening many incidents reads them
    once. Make a new one for each evaluation: it is never shared between them."""

    def __init__(self) -> None:
        self._enabled: dict[int, AlertChannel] | None = None

    def enabled(self) -> dict[int, AlertChannel]:
        if self._enabled is None:
            self._enabled = _enabled_channels()
        return self._enabled

    def of(self, policy: Policy) -> list[AlertChannel]:
        """Where alerts under ``policy`` go."""
        return _pick(self.enabled(), policy)

    def defaults(self) -> list[AlertChannel]:
        """The default channels (the platform's own incidents)."""
        return self.of(Policy())


def default_channels() -> list[AlertChannel]:
    """The default channels as the database has them now."""
    return Channels().defaults()


def cached_channels() -> dict[int, AlertChannel]:
    """Every enabled channel, by id, at most ``CACHE_TTL`` seconds old (for check-ins)."""
    return _cached("channels", _enabled_channels)


def cached_channels_of(policy: Policy) -> list[AlertChannel]:
    return _pick(cached_channels(), policy)


def sentry_in_use() -> bool:
    """Whether any enabled channel is a Sentry one (else no check-ins are even considered)."""
    return any(c.kind == AlertChannel.Kind.SENTRY for c in cached_channels().values())


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
