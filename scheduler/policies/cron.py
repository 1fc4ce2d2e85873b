"""Cron expressions: parsing, validation, fire times across DST, human descriptions.

Pure functions, no Django. Day-of-month/day-of-week and daylight-saving behaviour follow ISC
(Vixie) cron:

* The day fields are ANDed when either of them starts with ``*``, else ORed.
* A job is *fixed-time* when neither its minute nor its hour field starts with ``*``, else
  *wildcard*.
* Fixed-time: a wall time skipped by a spring-forward jump fires once, at the instant of the jump;
  a wall time repeated by a fall-back fires once, at its first occurrence. Several fixed times that
  land on the same instant (``0 2,3 * * *`` on a day whose 02:00-03:00 is skipped) fire once.
* Wildcard: follows real time. Wall times that do not exist never fire; a repeated wall time fires
  at each occurrence.

All instants returned are aware datetimes (UTC unless stated otherwise).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, Options
from croniter import CroniterError, croniter

__all__ = [
    "CronError",
    "CronExpression",
    "close_fire_times",
    "describe",
    "fire_times",
    "next_fire",
    "parse",
    "preview",
    "validate_timezone",
]


class CronError(ValueError):
    """An invalid cron expression or time zone."""


MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, lowest, highest, names mapped to numbers)
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {name: i for i, name in enumerate(_MONTH_NAMES, 1)}),
    ("day-of-week", 0, 7, {name: i for i, name in enumerate(_DAY_NAMES)}),
)
_FIELD_NAMES = " ".join(name for name, *_ in _FIELDS)
_ITEM_RE = re.compile(r"(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?")

_MINUTE = timedelta(minutes=1)
#: Largest backward clock shift handled (Antarctica/Troll's 2 hours is the largest in use).
_MAX_SHIFT = timedelta(hours=3)
#: How far ahead a search looks before deciding an expression never fires.
SEARCH_YEARS = 100
#: Nothing is searched for past this point (it keeps date arithmetic clear of datetime.max).
_LATEST = datetime(9999, 12, 30)
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month]


@dataclass(frozen=True, slots=True)
class _Plan:
    """Expanded fields, ready for fast wall-clock matching."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    days: tuple[int, ...] | None  # None: every day of the month
    weekdays: tuple[bool, ...] | None  # indexed by date.weekday(); None: every day of the week
    days_and: bool
    never: bool

    def _time_from(self, hour: int, minute: int) -> tuple[int, int] | None:
        hours, minutes = self.hours, self.minutes
        i = bisect_left(hours, hour)
        if i == len(hours):
            return None
        if hours[i] == hour:
            j = bisect_left(minutes, minute)
            if j < len(minutes):
                return hour, minutes[j]
            i += 1
            if i == len(hours):
                return None
        return hours[i], minutes[0]

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        dom = self.days is None or day in self.days
        if self.days_and and not dom:
            return False
        if self.weekdays is None or (dom and not self.days_and):
            return True
        return self.weekdays[date(year, month, day).weekday()]

    def next_wall(self, start: datetime) -> datetime | None:
        """The first matching naive wall time at or after ``start`` (seconds ignored)."""
        year, month, day = start.year, start.month, start.day
        hour, minute = start.hour, start.minute
        last_year = min(year + SEARCH_YEARS, 9999)
        months = self.months
        day_list = self.days if self.days_and else None
        while year <= last_year:
            if month not in months:
                i = bisect_right(months, month)
                if i == len(months):
                    year, month = year + 1, months[0]
                else:
                    month = months[i]
                day, hour, minute = 1, 0, 0
                continue
            length = _days_in_month(year, month)
            while day <= length:
                if day_list is not None:
                    i = bisect_left(day_list, day)
                    if i == len(day_list) or day_list[i] > length:
                        break
                    if day_list[i] != day:
                        day, hour, minute = day_list[i], 0, 0
                if self._day_matches(year, month, day):
                    found = self._time_from(hour, minute)
                    if found is not None:
                        return datetime(year, month, day, *found)
                day, hour, minute = day + 1, 0, 0
            month, day, hour, minute = month + 1, 1, 0, 0
            if month > 12:
                year, month = year + 1, 1
        return None


@dataclass(frozen=True)
class CronExpression:
    """A validated five-field cron expression (build it with :func:`parse`)."""

    minute: str
    hour: str
    day_of_month: str
    month: str
    day_of_week: str
    expr: str

    def __str__(self) -> str:
        return self.expr

    @property
    def is_fixed_time(self) -> bool:
        """True when neither the minute nor the hour field starts with ``*``."""
        return not (self.minute.startswith("*") or self.hour.startswith("*"))

    @property
    def days_either(self) -> bool:
        """True when a day matching either day field fires (neither starts with ``*``:
        ``0 9 13 * 5`` fires on the 13th and on every Friday); else both must match."""
        return not (self.day_of_month.startswith("*") or self.day_of_week.startswith("*"))

    @cached_property
    def _plan(self) -> _Plan:
        return _build_plan(self)


def _check_value(token: str, field: int) -> int:
    name, low, high, names = _FIELDS[field]
    if token.isdigit():
        value = int(token)
    elif token in names:
        value = names[token]
    elif names:
        first, last = next(iter(names)), next(reversed(names))
        raise CronError(
            f"{name} field: unknown name {token!r} (expected {first}-{last} or a number)"
        )
    else:
        raise CronError(f"{name} field: {token!r} is not a number")
    if not low <= value <= high:
        raise CronError(f"{name} field: value {value} out of range {low}-{high}")
    return value


def _check_field(text: str, field: int) -> None:
    name, low, high, _names = _FIELDS[field]
    for item in text.split(","):
        match = _ITEM_RE.fullmatch(item)
        if match is None:
            raise CronError(f"{name} field: invalid syntax {item!r}")
        base, step = match["base"], match["step"]
        if base != "*":
            for token in base.split("-"):
                _check_value(token, field)
        if step is not None and not 1 <= int(step) <= high - low + 1:
            raise CronError(f"{name} field: step {int(step)} out of range 1-{high - low + 1}")


@lru_cache(maxsize=16384)
def _parse(expr: str) -> CronExpression:
    text = " ".join(expr.lower().split())
    if not text:
        raise CronError("cron expression is empty")
    if text.startswith("@"):
        if text == "@reboot":
            raise CronError("@reboot is not supported: it has no fire times")
        if text not in MACROS:
            raise CronError(f"unknown macro {text!r} (expected one of {', '.join(MACROS)})")
        text = MACROS[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(f"expected 5 fields ({_FIELD_NAMES}), got {len(fields)}")
    for i, field_text in enumerate(fields):
        _check_field(field_text, i)
    parsed = CronExpression(*fields, expr=text)
    _ = parsed._plan  # croniter expands the fields and has the last word on validity
    return parsed


def parse(expr: str) -> CronExpression:
    """Validate and normalise ``expr`` (five fields, or a macro such as ``@daily``)."""
    if not isinstance(expr, str):
        raise CronError(f"cron expression must be a string, got {type(expr).__name__}")
    return _parse(expr)


def _build_plan(expr: CronExpression) -> _Plan:
    try:
        expanded, _nth = croniter.expand(expr.expr)
    except CroniterError as exc:
        raise CronError(f"invalid cron expression {expr.expr!r}: {exc}") from None

    def values(index: int) -> tuple[int, ...] | None:
        field = expanded[index]
        return None if field == ["*"] else tuple(sorted({int(v) for v in field}))

    minutes = values(0) or tuple(range(60))
    hours = values(1) or tuple(range(24))
    months = values(3) or tuple(range(1, 13))
    days = values(2)
    cron_weekdays = values(4)
    weekdays = (
        None
        if cron_weekdays is None
        else tuple((wd + 1) % 7 in cron_weekdays for wd in range(7))  # Monday is 0
    )
    days_and = not expr.days_either
    never = days_and and not any(
        d <= (29 if m == 2 else _MONTH_DAYS[m]) for m in months for d in (days or (1,))
    )
    return _Plan(minutes, hours, months, days, weekdays, days_and, never)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def validate_timezone(name: str) -> ZoneInfo:
    """The zone called ``name``, or :class:`CronError` when there is no such zone."""
    if not isinstance(name, str) or not name:
        raise CronError(f"unknown time zone {name!r}")
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name!r}") from None


def _as_expression(expr: CronExpression | str) -> CronExpression:
    return expr if isinstance(expr, CronExpression) else parse(expr)


def _as_zone(tz: str | tzinfo) -> tzinfo:
    return tz if isinstance(tz, tzinfo) else validate_timezone(tz)


def _as_utc(moment: datetime, what: str) -> datetime:
    """``moment`` as a naive UTC datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _offset_at(zone: tzinfo, instant: datetime) -> timedelta:
    """UTC offset of ``zone`` at the naive UTC ``instant``."""
    return zone.fromutc(instant.replace(tzinfo=zone)).utcoffset()  # type: ignore[return-value]


def _transition(zone: tzinfo, low: datetime, high: datetime) -> datetime:
    """The first naive UTC instant in (low, high] whose offset differs from low's offset.

    Requires the offsets at ``low`` and ``high`` to differ; transitions are whole seconds.
    """
    low = low.replace(microsecond=0)
    before = _offset_at(zone, low)
    lo, hi = 0, int((high - low).total_seconds()) + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(zone, low + timedelta(seconds=mid)) == before:
            lo = mid
        else:
            hi = mid
    return low + timedelta(seconds=hi)


def _fire_after(zone: tzinfo, wall: datetime, after: datetime, fixed: bool) -> datetime | None:
    """The earliest instant (naive UTC) later than ``after`` at which ``wall`` fires."""
    early = zone.utcoffset(wall)  # fold=0: the offset in force before a transition
    late = zone.utcoffset(wall.replace(fold=1))
    if early == late:
        instant = wall - early  # type: ignore[operator]
        return instant if instant > after else None
    if early > late:  # type: ignore[operator]
        # Repeated by a fall-back: fixed-time fires at the first occurrence only.
        for offset in (early,) if fixed else (early, late):
            instant = wall - offset  # type: ignore[operator]
            if instant > after:
                return instant
        return None
    if not fixed:  # skipped by a spring-forward
        return None
    jump = _transition(zone, wall - late, wall - early)  # type: ignore[operator]
    return jump if jump > after else None


def _search(
    plan: _Plan, zone: tzinfo, wall: datetime, after: datetime, fixed: bool
) -> datetime | None:
    """First fire instant later than ``after`` for walls from ``wall`` on (naive UTC or None)."""
    last_year = min(wall.year + SEARCH_YEARS, 9999)
    while True:
        found = plan.next_wall(wall)
        if found is None or found.year > last_year:
            return None
        instant = _fire_after(zone, found, after, fixed)
        if instant is not None:
            return instant
        if found >= _LATEST:
            return None
        wall = found + _MINUTE


def _next_fire(plan: _Plan, zone: tzinfo, fixed: bool, after: datetime) -> datetime | None:
    """``next_fire`` on a naive UTC ``after``; returns naive UTC."""
    if plan.never or after >= _LATEST:
        return None
    offset = _offset_at(zone, after)
    start = (after + offset).replace(second=0, microsecond=0) + _MINUTE
    horizon = after + _MAX_SHIFT
    if _offset_at(zone, horizon) >= offset:
        # No fall-back just ahead: wall times later than local(after) come in real-time order.
        return _search(plan, zone, start, after, fixed)
    # A fall-back at `jump`: local time runs to `top`, then restarts at local(jump).
    jump = _transition(zone, after, horizon)
    top = jump + offset
    wall = plan.next_wall(start)
    if wall is not None and wall < top:
        return wall - offset  # before the jump
    return _search(plan, zone, jump + _offset_at(zone, jump), after, fixed)


def next_fire(expr: CronExpression | str, tz: str | tzinfo, after: datetime) -> datetime | None:
    """The first fire instant strictly after ``after`` (aware, any zone), as an aware UTC datetime.

    ``None`` when the expression never fires (``0 0 30 2 *``) within the next hundred years.
    """
    parsed = _as_expression(expr)
    found = _next_fire(parsed._plan, _as_zone(tz), parsed.is_fixed_time, _as_utc(after, "after"))
    return None if found is None else found.replace(tzinfo=UTC)


def _iter_fires(parsed: CronExpression, zone: tzinfo, start: datetime) -> Iterator[datetime]:
    plan, fixed = parsed._plan, parsed.is_fixed_time
    instant = _next_fire(plan, zone, fixed, start)
    while instant is not None:
        yield instant
        instant = _next_fire(plan, zone, fixed, instant)


def fire_times(
    expr: CronExpression | str,
    tz: str | tzinfo,
    start: datetime,
    end: datetime,
    limit: int | None = None,
) -> list[datetime]:
    """Every fire instant in (start, end], as aware UTC datetimes, ascending."""
    parsed, zone = _as_expression(expr), _as_zone(tz)
    last = _as_utc(end, "end")
    out: list[datetime] = []
    if limit is not None and limit <= 0:
        return out
    for instant in _iter_fires(parsed, zone, _as_utc(start, "start")):
        if instant > last:
            break
        out.append(instant.replace(tzinfo=UTC))
        if limit is not None and len(out) >= limit:
            break
    return out


#: How far ahead :func:`close_fire_times` compares fire times.
GAP_HORIZON = timedelta(days=366)
#: Fire times compared from the start, and around each clock change, at most (cost bound:
#: a cron firing this often has consecutive fire times under an hour apart somewhere).
GAP_SCAN_LIMIT = 5000
#: Fire times are whole minutes of wall time: two of them are never closer than this.
_CLOSEST = timedelta(minutes=1)


def close_fire_times(
    expr: CronExpression | str, tz: str | tzinfo, after: datetime, within: timedelta
) -> tuple[datetime, datetime] | None:
    """Two consecutive fire instants (aware UTC) at most ``within`` apart, or None when no
    two are.

    Compared: the fire times of the coming year (``GAP_HORIZON``, its first
    ``GAP_SCAN_LIMIT``), always at least the first two (a cron firing once a year or once
    every leap year is compared with its next fire), and those around each change of the
    zone's UTC offset that year, where daylight saving brings fire times closer in real
    time than on the wall clock.
    """
    if within < _CLOSEST:
        return None
    parsed, zone = _as_expression(expr), _as_zone(tz)
    start = _as_utc(after, "after")
    end = start + GAP_HORIZON
    windows = [(start, end, 2)]
    day = timedelta(days=1)
    moment = start
    while moment < end:
        if _offset_at(zone, moment) != _offset_at(zone, moment + day):
            windows.append((moment - day, moment + 2 * day, 0))
        moment += day
    for low, high, at_least in windows:
        previous = None
        for count, instant in enumerate(_iter_fires(parsed, zone, low)):
            beyond = instant > high or count >= GAP_SCAN_LIMIT
            if beyond and count >= at_least:
                break
            if previous is not None and instant - previous <= within:
                return previous.replace(tzinfo=UTC), instant.replace(tzinfo=UTC)
            previous = instant
    return None


def preview(
    expr: CronExpression | str, tz: str | tzinfo, after: datetime, count: int = 5
) -> list[datetime]:
    """The next ``count`` fire times after ``after``, as aware datetimes in the schedule's zone."""
    parsed, zone = _as_expression(expr), _as_zone(tz)
    out: list[datetime] = []
    if count <= 0:
        return out
    for instant in _iter_fires(parsed, zone, _as_utc(after, "after")):
        out.append(instant.replace(tzinfo=UTC).astimezone(zone))
        if len(out) >= count:
            break
    return out


def describe(expr: CronExpression | str) -> str:
    """Human text for ``expr`` ("At 02:30", "Every minute"); the expression itself on failure.

    When both day fields are restricted, cron fires on a day matching either of them:
    ``0 9 13 * 5`` is "At 09:00, on day 13 of the month or on Friday" (cron-descriptor alone
    would say "..., only on Friday", as if both had to match)."""
    try:
        parsed = _as_expression(expr)
        options = Options()
        options.use_24hour_time_format = True
        descriptor = ExpressionDescriptor(parsed.expr, options)
        if not parsed.days_either:
            return descriptor.get_description()
        return _describe_either_day(descriptor, options)
    except Exception:
        return str(expr)


def _describe_either_day(descriptor: ExpressionDescriptor, options: Options) -> str:
    """cron-descriptor's full description, its two day parts joined by "or"."""
    weekdays = descriptor.get_day_of_week_description().removeprefix(", ").removeprefix("only ")
    if weekdays[:1].isupper():  # "Monday through Friday"
        weekdays = f"on {weekdays}"
    text = (
        f"{descriptor.get_time_of_day_description()}"
        f"{descriptor.get_day_of_month_description()} or {weekdays}"
        f"{descriptor.get_month_description()}{descriptor.get_year_description()}"
    )
    text = descriptor.transform_verbosity(text, options.verbose)
    return ExpressionDescriptor.transform_case(text, options.casing_type)
