"""scheduler.policies.cron: parsing, validation and fire times under ISC cron's DST rules.

Expected instants are worked out by hand from each zone's 2026 transitions:

* Europe/Berlin: 2026-03-29 01:00 UTC (02:00 CET -> 03:00 CEST),
  2026-10-25 01:00 UTC (03:00 CEST -> 02:00 CET).
* America/New_York: 2026-03-08 07:00 UTC (02:00 EST -> 03:00 EDT),
  2026-11-01 06:00 UTC (02:00 EDT -> 01:00 EST).
* Australia/Lord_Howe: 2026-04-04 15:00 UTC (Apr 5 02:00 +11 -> 01:30 +10:30),
  2026-10-03 15:30 UTC (Oct 4 02:00 +10:30 -> 02:30 +11).
* America/Santiago: 2026-04-05 03:00 UTC (Apr 5 00:00 -03 -> Apr 4 23:00 -04),
  2026-09-06 04:00 UTC (Sep 6 00:00 -04 -> 01:00 -03).
* Antarctica/Troll: 2026-03-29 01:00 UTC (01:00 +00 -> 03:00 +02),
  2026-10-25 01:00 UTC (03:00 +02 -> 01:00 +00).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from scheduler.policies.cron import (
    CronError,
    CronExpression,
    close_fire_times,
    describe,
    fire_times,
    next_fire,
    parse,
    preview,
    validate_timezone,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
SANTIAGO = "America/Santiago"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires_on_local_day(expr: str, tz: str, day: date) -> list[datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    found = fire_times(expr, tz, start, start + timedelta(days=3))
    return [t for t in found if t.astimezone(zone).date() == day]


# --- parsing and validation ---------------------------------------------------------------


def test_parse_normalises_whitespace_and_case() -> None:
    parsed = parse("  0   9 *\tJAN  Mon-FRI ")
    assert parsed == CronExpression("0", "9", "*", "jan", "mon-fri", expr="0 9 * jan mon-fri")
    assert str(parsed) == "0 9 * jan mon-fri"
    assert parse("0 9 * jan mon-fri") is parse("0 9 * jan mon-fri")


@pytest.mark.parametrize(
    ("macro", "expanded"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        (" @DAILY ", "0 0 * * *"),
    ],
)
def test_macros_expand(macro: str, expanded: str) -> None:
    assert parse(macro).expr == expanded


def test_daily_macro_fires_at_local_midnight() -> None:
    assert next_fire("@daily", BERLIN, utc(2026, 5, 13, 12)) == utc(2026, 5, 13, 22)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "minute field: value 61 out of range 0-59"),
        ("0 24 * * *", "hour field: value 24 out of range 0-23"),
        ("0 0 0 * *", "day-of-month field: value 0 out of range 1-31"),
        ("0 0 * 13 *", "month field: value 13 out of range 1-12"),
        ("0 0 * * 8", "day-of-week field: value 8 out of range 0-7"),
        ("0 0-70 * * *", "hour field: value 70 out of range 0-23"),
        (
            "0 0 * * * *",
            r"expected 5 fields \(minute hour day-of-month month day-of-week\), got 6",
        ),
        ("0 0 * * * * 2026", "expected 5 fields .*, got 7"),
        ("0 0 * *", "expected 5 fields .*, got 4"),
        ("garbage", "expected 5 fields .*, got 1"),
        ("a b c d e", "minute field: 'a' is not a number"),
        ("0 0 * foo *", "month field: unknown name 'foo'"),
        ("0 0 * * funday", "day-of-week field: unknown name 'funday'"),
        ("jan * * * *", "minute field: 'jan' is not a number"),
        ("*/0 * * * *", "minute field: step 0 out of range 1-60"),
        ("1,,2 * * * *", "minute field: invalid syntax ''"),
        ("0 0 L * *", "day-of-month field: 'l' is not a number"),
        ("0 0 * * 1#2", "day-of-week field: invalid syntax '1#2'"),
        ("0 0 ? * *", "day-of-month field: invalid syntax '\\?'"),
        ("", "cron expression is empty"),
        ("   ", "cron expression is empty"),
        ("@reboot", "@reboot is not supported"),
        ("@fortnightly", "unknown macro '@fortnightly'"),
    ],
)
def test_invalid_expressions_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(expr)


def test_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse("61 * * * *")


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(CronError, match="must be a string"):
        parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expr", "fixed"),
    [
        ("30 2 * * *", True),
        ("0 1-3 * * *", True),
        ("0,30 9 * * 1-5", True),
        ("@daily", True),
        ("15 * * * *", False),
        ("*/5 * * * *", False),
        ("0 */2 * * *", False),
        ("* 3 * * *", False),
        ("@hourly", False),
    ],
)
def test_is_fixed_time(expr: str, fixed: bool) -> None:
    assert parse(expr).is_fixed_time is fixed


def test_validate_timezone() -> None:
    assert validate_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert validate_timezone("UTC") == ZoneInfo("UTC")


@pytest.mark.parametrize("name", ["", "Mars/Olympus_Mons", "Europe", "../etc/passwd", " UTC"])
def test_unknown_timezone(name: str) -> None:
    with pytest.raises(CronError, match=f"unknown time zone {name!r}"):
        validate_timezone(name)
    with pytest.raises(CronError, match="unknown time zone"):
        next_fire("* * * * *", name, utc(2026, 1, 1))


def test_naive_after_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("* * * * *", BERLIN, datetime(2026, 1, 1))


# --- plain cases ------------------------------------------------------------------------------


def test_utc_zone_is_trivial() -> None:
    assert fire_times("*/20 * * * *", "UTC", utc(2026, 3, 29, 0, 50), utc(2026, 3, 29, 2)) == [
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 29, 1, 20),
        utc(2026, 3, 29, 1, 40),
        utc(2026, 3, 29, 2, 0),
    ]
    assert next_fire("30 2 * * *", timezone(timedelta(0)), utc(2026, 3, 29)) == utc(
        2026, 3, 29, 2, 30
    )


def test_zones_without_dst() -> None:
    assert next_fire("30 2 * * *", "Asia/Kolkata", utc(2026, 3, 29)) == utc(2026, 3, 29, 21, 0)
    assert next_fire("0 0 * * *", "Asia/Kathmandu", utc(2026, 10, 25)) == utc(2026, 10, 25, 18, 15)


def test_next_fire_is_strictly_after() -> None:
    assert next_fire("30 2 * * *", BERLIN, utc(2026, 5, 13, 0, 30)) == utc(2026, 5, 14, 0, 30)
    just_before = datetime(2026, 5, 13, 0, 29, 59, 999999, tzinfo=UTC)
    assert next_fire("30 2 * * *", BERLIN, just_before) == utc(2026, 5, 13, 0, 30)
    assert next_fire("* * * * *", BERLIN, utc(2026, 5, 13, 0, 30)) == utc(2026, 5, 13, 0, 31)


def test_after_in_another_zone() -> None:
    tokyo_nine = datetime(2026, 5, 13, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:00 UTC
    assert next_fire("30 2 * * *", BERLIN, tokyo_nine) == utc(2026, 5, 13, 0, 30)
    berlin_noon = datetime(2026, 5, 13, 12, 0, tzinfo=ZoneInfo(BERLIN))  # 10:00 UTC
    assert next_fire("0 7 * * *", NEW_YORK, berlin_noon) == utc(2026, 5, 13, 11, 0)
    fixed_offset = datetime(2026, 5, 13, 5, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert next_fire("0 7 * * *", NEW_YORK, fixed_offset) == utc(2026, 5, 13, 11, 0)


def test_returns_aware_utc() -> None:
    found = next_fire("0 9 * * *", BERLIN, utc(2026, 5, 13))
    assert found is not None and found.tzinfo is UTC


def test_month_and_day_names() -> None:
    # 2027-01-04 is the first Monday of January 2027.
    assert next_fire("0 9 * jan mon", BERLIN, utc(2026, 5, 1)) == utc(2027, 1, 4, 8)
    assert next_fire("0 9 * JAN-mar SAT", "UTC", utc(2026, 3, 27)) == utc(2026, 3, 28, 9)


def test_day_of_month_or_day_of_week_when_neither_is_a_star() -> None:
    # '1 of the month OR Monday'; 2026-06-01 is a Monday.
    assert fire_times("0 0 1 * 1", "UTC", utc(2026, 6, 1), utc(2026, 7, 13)) == [
        utc(2026, 6, 8),
        utc(2026, 6, 15),
        utc(2026, 6, 22),
        utc(2026, 6, 29),
        utc(2026, 7, 1),
        utc(2026, 7, 6),
        utc(2026, 7, 13),
    ]


def test_day_of_month_and_day_of_week_when_one_starts_with_a_star() -> None:
    # ISC cron: '*/10' starts with '*', so days 1, 11, 21, 31 that are also Mondays.
    assert fire_times("0 0 */10 * 1", "UTC", utc(2026, 1, 1), utc(2026, 12, 31), limit=4) == [
        utc(2026, 5, 11),
        utc(2026, 6, 1),
        utc(2026, 8, 31),
        utc(2026, 9, 21),
    ]


def test_day_of_week_covering_the_whole_week_matches_every_day() -> None:
    # Neither field starts with '*', so '13th OR any day of the week': every day.
    assert fire_times("0 0 13 * 0-6", "UTC", utc(2026, 6, 1), utc(2026, 6, 4)) == [
        utc(2026, 6, 2),
        utc(2026, 6, 3),
        utc(2026, 6, 4),
    ]


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 */7"])
def test_never_fires(expr: str) -> None:
    assert next_fire(expr, BERLIN, utc(2026, 1, 1)) is None
    assert fire_times(expr, BERLIN, utc(2026, 1, 1), utc(2036, 1, 1)) == []
    assert preview(expr, BERLIN, utc(2026, 1, 1)) == []


def test_leap_day() -> None:
    assert next_fire("0 12 29 2 *", BERLIN, utc(2026, 1, 1)) == utc(2028, 2, 29, 11)
    # 2100 is not a leap year: eight years from 2096 to 2104.
    assert next_fire("0 12 29 2 *", BERLIN, utc(2096, 3, 1)) == utc(2104, 2, 29, 11)


def test_fire_times_limit_and_bounds() -> None:
    assert fire_times("0 * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 2), limit=2) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]
    assert fire_times("0 * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 2)) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]
    assert fire_times("0 * * * *", "UTC", utc(2026, 1, 1), utc(2026, 1, 2), limit=0) == []


# --- spring forward ---------------------------------------------------------------------------


def test_fixed_time_in_gap_fires_once_at_the_jump() -> None:
    assert fire_times("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), utc(2026, 3, 31)) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


@pytest.mark.parametrize("expr", ["0 2 * * *", "30 2 * * *", "45 2 * * *", "59 2 * * *"])
def test_every_fixed_time_in_gap_fires_at_the_jump(expr: str) -> None:
    assert next_fire(expr, BERLIN, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 0)
    assert next_fire(expr, BERLIN, datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)) == utc(
        2026, 3, 29, 1, 0
    )


def test_several_gap_times_of_one_job_fire_once() -> None:
    assert fire_times("0,30 2 * * *", BERLIN, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)) == [
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 30, 0, 0),
        utc(2026, 3, 30, 0, 30),
    ]


def test_gap_time_and_real_time_on_the_same_instant_fire_once() -> None:
    # 02:00 is skipped and fires at 03:00 CEST, which is also the job's own 03:00: one run.
    assert fire_times("0 2,3 * * *", BERLIN, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)) == [
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 30, 0, 0),
        utc(2026, 3, 30, 1, 0),
    ]


def test_fixed_time_in_gap_new_york() -> None:
    assert fire_times("30 2 * * *", NEW_YORK, utc(2026, 3, 7), utc(2026, 3, 10)) == [
        utc(2026, 3, 7, 7, 30),  # EST
        utc(2026, 3, 8, 7, 0),  # the jump, 03:00 EDT
        utc(2026, 3, 9, 6, 30),  # EDT
    ]


def test_wildcard_skips_wall_times_that_do_not_exist() -> None:
    assert fire_times("30 * * * *", BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 3)) == [
        utc(2026, 3, 28, 23, 30),  # 00:30 CET
        utc(2026, 3, 29, 0, 30),  # 01:30 CET
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST
        utc(2026, 3, 29, 2, 30),  # 04:30 CEST
    ]
    # Nothing at all when the only wall times are inside the gap.
    assert fire_times("*/15 2 29 3 *", BERLIN, utc(2026, 3, 1), utc(2026, 3, 31)) == []


def test_midnight_inside_the_gap() -> None:
    # Santiago skips Sunday 00:00-00:59 on 2026-09-06.
    assert fire_times("0 0 * * *", SANTIAGO, utc(2026, 9, 4, 12), utc(2026, 9, 7, 12)) == [
        utc(2026, 9, 5, 4),  # Saturday 00:00 -04
        utc(2026, 9, 6, 4),  # Sunday: the jump, 01:00 -03
        utc(2026, 9, 7, 3),  # Monday 00:00 -03
    ]


# --- fall back --------------------------------------------------------------------------------


def test_fixed_time_in_repeated_hour_fires_once_at_first_occurrence() -> None:
    assert fire_times("30 2 * * *", BERLIN, utc(2026, 10, 23, 12), utc(2026, 10, 27)) == [
        utc(2026, 10, 24, 0, 30),  # CEST
        utc(2026, 10, 25, 0, 30),  # first 02:30 (CEST); the CET one does not fire
        utc(2026, 10, 26, 1, 30),  # CET
    ]


@pytest.mark.parametrize(
    "after",
    [
        utc(2026, 10, 25, 0, 30),  # on the first 02:30
        utc(2026, 10, 25, 0, 45),  # 02:45 CEST, before the repeat
        utc(2026, 10, 25, 1, 10),  # 02:10 CET, inside the repeat
        utc(2026, 10, 25, 1, 30),  # on the second 02:30
    ],
)
def test_fixed_time_does_not_fire_on_the_repeat(after: datetime) -> None:
    assert next_fire("30 2 * * *", BERLIN, after) == utc(2026, 10, 26, 1, 30)


def test_fixed_time_before_the_repeat_still_fires_first() -> None:
    assert next_fire("30 2 * * *", BERLIN, utc(2026, 10, 25, 0, 15)) == utc(2026, 10, 25, 0, 30)
    assert next_fire("30 2 * * *", BERLIN, utc(2026, 10, 24, 23, 0)) == utc(2026, 10, 25, 0, 30)


def test_new_york_fixed_time_on_fall_back_day_fires_once() -> None:
    assert fire_times("30 1 * * *", NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 3)) == [
        utc(2026, 10, 31, 5, 30),  # EDT
        utc(2026, 11, 1, 5, 30),  # first 01:30, EDT
        utc(2026, 11, 2, 6, 30),  # EST
    ]


def test_wildcard_fires_on_both_occurrences() -> None:
    assert fire_times("30 * * * *", BERLIN, utc(2026, 10, 24, 23), utc(2026, 10, 25, 3)) == [
        utc(2026, 10, 24, 23, 30),  # 01:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 1, 30),  # 02:30 CET
        utc(2026, 10, 25, 2, 30),  # 03:30 CET
    ]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2026, 10, 25, 0, 45), utc(2026, 10, 25, 1, 30)),  # from 02:45 CEST to 02:30 CET
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30)),
        (utc(2026, 10, 24, 23, 59), utc(2026, 10, 25, 0, 30)),
    ],
)
def test_wildcard_next_fire_around_the_repeat(after: datetime, expected: datetime) -> None:
    assert next_fire("30 * * * *", BERLIN, after) == expected


def test_wildcard_every_minute_through_the_repeat() -> None:
    # From 02:58 CEST: 02:59 CEST, then 02:00 CET and on.
    assert fire_times("* * * * *", BERLIN, utc(2026, 10, 25, 0, 58), utc(2026, 10, 25, 1, 1)) == [
        utc(2026, 10, 25, 0, 59),
        utc(2026, 10, 25, 1, 0),
        utc(2026, 10, 25, 1, 1),
    ]


def test_santiago_repeated_hour_before_midnight() -> None:
    # Saturday 2026-04-04 23:00-23:59 happens twice.
    assert fire_times("30 23 * * *", SANTIAGO, utc(2026, 4, 3, 12), utc(2026, 4, 7)) == [
        utc(2026, 4, 4, 2, 30),  # Friday 23:30 -03
        utc(2026, 4, 5, 2, 30),  # Saturday's first 23:30 (-03)
        utc(2026, 4, 6, 3, 30),  # Sunday 23:30 -04
    ]


# --- counts over a local day ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "tz", "day", "count"),
    [
        ("0 * * * *", BERLIN, date(2026, 3, 29), 23),
        ("0 * * * *", BERLIN, date(2026, 10, 25), 25),
        ("0 * * * *", BERLIN, date(2026, 6, 1), 24),
        ("0 * * * *", NEW_YORK, date(2026, 3, 8), 23),
        ("0 * * * *", NEW_YORK, date(2026, 11, 1), 25),
        ("*/15 * * * *", BERLIN, date(2026, 3, 29), 92),
        ("*/15 * * * *", BERLIN, date(2026, 10, 25), 100),
        ("*/30 * * * *", NEW_YORK, date(2026, 3, 8), 46),
        ("*/30 * * * *", NEW_YORK, date(2026, 11, 1), 50),
        # Lord Howe shifts by 30 minutes: 23.5 and 24.5 hour days.
        ("*/30 * * * *", LORD_HOWE, date(2026, 10, 4), 47),
        ("*/30 * * * *", LORD_HOWE, date(2026, 4, 5), 49),
        ("0 * * * *", LORD_HOWE, date(2026, 10, 4), 23),  # 02:00 is skipped
        ("0 * * * *", LORD_HOWE, date(2026, 4, 5), 24),  # only 01:30-01:59 repeats
        ("0 * * * *", "UTC", date(2026, 3, 29), 24),
        # Fixed-time every hour: the skipped 02:00 lands on 03:00, the repeated 02:00 runs once.
        ("0 0-23 * * *", BERLIN, date(2026, 3, 29), 23),
        ("0 0-23 * * *", BERLIN, date(2026, 10, 25), 24),
    ],
)
def test_fire_count_over_local_day(expr: str, tz: str, day: date, count: int) -> None:
    assert len(fires_on_local_day(expr, tz, day)) == count


def test_hourly_lists_every_real_hour_on_long_day() -> None:
    fired = fires_on_local_day("0 * * * *", BERLIN, date(2026, 10, 25))
    assert fired == [utc(2026, 10, 24, 22) + timedelta(hours=h) for h in range(25)]


def test_hourly_on_short_day() -> None:
    fired = fires_on_local_day("0 * * * *", BERLIN, date(2026, 3, 29))
    assert fired == [utc(2026, 3, 28, 23) + timedelta(hours=h) for h in range(23)]


# --- Lord Howe --------------------------------------------------------------------------------


def test_lord_howe_fixed_time_in_half_hour_gap() -> None:
    assert fire_times("15 2 * * *", LORD_HOWE, utc(2026, 10, 2), utc(2026, 10, 5)) == [
        utc(2026, 10, 2, 15, 45),  # Oct 3 02:15 +10:30
        utc(2026, 10, 3, 15, 30),  # Oct 4 02:15 does not exist: the jump, 02:30 +11
        utc(2026, 10, 4, 15, 15),  # Oct 5 02:15 +11
    ]


def test_lord_howe_fixed_time_in_repeated_half_hour() -> None:
    assert fire_times("45 1 * * *", LORD_HOWE, utc(2026, 4, 2, 12), utc(2026, 4, 6)) == [
        utc(2026, 4, 2, 14, 45),  # Apr 3 01:45 +11
        utc(2026, 4, 3, 14, 45),  # Apr 4 01:45 +11
        utc(2026, 4, 4, 14, 45),  # Apr 5 first 01:45 (+11) only
        utc(2026, 4, 5, 15, 15),  # Apr 6 01:45 +10:30
    ]


def test_lord_howe_wildcard_in_repeated_half_hour() -> None:
    assert fire_times("45 * * * *", LORD_HOWE, utc(2026, 4, 4, 14), utc(2026, 4, 4, 17)) == [
        utc(2026, 4, 4, 14, 45),  # 01:45 +11
        utc(2026, 4, 4, 15, 15),  # 01:45 +10:30
        utc(2026, 4, 4, 16, 15),  # 02:45 +10:30
    ]


# --- a daily job keeps its wall time ------------------------------------------------------------


def test_daily_job_keeps_local_wall_time_across_both_transitions() -> None:
    assert fire_times("0 9 * * *", BERLIN, utc(2026, 3, 27), utc(2026, 3, 31)) == [
        utc(2026, 3, 27, 8),
        utc(2026, 3, 28, 8),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]
    assert fire_times("0 9 * * *", BERLIN, utc(2026, 10, 23), utc(2026, 10, 27)) == [
        utc(2026, 10, 23, 7),
        utc(2026, 10, 24, 7),
        utc(2026, 10, 25, 8),
        utc(2026, 10, 26, 8),
    ]
    local = preview("0 9 * * *", BERLIN, utc(2026, 3, 27), count=4)
    assert [(t.day, t.hour, t.minute) for t in local] == [
        (27, 9, 0),
        (28, 9, 0),
        (29, 9, 0),
        (30, 9, 0),
    ]


# --- preview and describe ---------------------------------------------------------------------


def test_preview_is_in_the_schedules_zone() -> None:
    shown = preview("0 * * * *", BERLIN, utc(2026, 10, 24, 22, 30), count=4)
    assert shown == [
        datetime(2026, 10, 25, 1, 0, tzinfo=ZoneInfo(BERLIN)),
        datetime(2026, 10, 25, 2, 0, tzinfo=ZoneInfo(BERLIN)),
        datetime(2026, 10, 25, 2, 0, fold=1, tzinfo=ZoneInfo(BERLIN)),
        datetime(2026, 10, 25, 3, 0, tzinfo=ZoneInfo(BERLIN)),
    ]
    assert [t.utcoffset() for t in shown] == [timedelta(hours=h) for h in (2, 2, 1, 1)]
    assert all(t.tzinfo == ZoneInfo(BERLIN) for t in shown)


def test_preview_fixed_time_in_repeat_is_shown_once() -> None:
    shown = preview("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), count=2)
    assert [(t.day, t.hour, t.minute, t.utcoffset()) for t in shown] == [
        (25, 2, 30, timedelta(hours=2)),
        (26, 2, 30, timedelta(hours=1)),
    ]


def test_preview_default_count() -> None:
    assert len(preview("*/5 * * * *", "UTC", utc(2026, 1, 1))) == 5


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("30 2 * * *", "At 02:30"),
        ("30 14 * * *", "At 14:30"),
        ("* * * * *", "Every minute"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("@daily", "At 00:00"),
        ("0 0 * jan mon", "At 00:00, only on Monday, only in January"),
        # Both day fields restricted: either matching day fires (ISC cron), and it says so.
        ("0 9 13 * 5", "At 09:00, on day 13 of the month or on Friday"),
        (
            "0 9 1,15 * mon-fri",
            "At 09:00, on day 1 and 15 of the month or on Monday through Friday",
        ),
        ("0 9 13 6 5", "At 09:00, on day 13 of the month or on Friday, only in June"),
        # One of them starts with '*': both must match.
        ("0 9 */2 * 5", "At 09:00, every 2 days, only on Friday"),
        ("0 9 13 * */2", "At 09:00, on day 13 of the month, every 2 days of the week"),
    ],
)
def test_describe(expr: str, text: str) -> None:
    assert describe(expr) == text


def test_the_description_of_either_day_matches_the_fire_times() -> None:
    # December 2026: the Fridays (the 4th, 11th, 18th) fire, and so does the 13th, a Sunday.
    times = preview("0 9 13 * 5", "UTC", utc(2026, 12, 1), count=4)
    assert [t.day for t in times] == [4, 11, 13, 18]
    assert " or on Friday" in describe("0 9 13 * 5")


def test_describe_accepts_parsed_expression_and_falls_back_to_the_text() -> None:
    assert describe(parse("30 2 * * *")) == "At 02:30"
    assert describe("not a cron expression") == "not a cron expression"
    assert describe("61 * * * *") == "61 * * * *"


# --- cross-check against a minute-by-minute walk of real time ---------------------------------


def _reference_values(text: str, low: int, high: int) -> set[int]:
    """Plain numbers, '*', 'a-b' and '/n' steps, comma separated."""
    values: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(v) for v in base.split("-"))
        else:
            first = last = int(base)
            if step:
                last = high
        values.update(range(first, last + 1, int(step or 1)))
    return values


def reference_fire_times(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Walk every UTC minute and apply the rules literally (day fields must be '*' or the
    day-of-week field alone)."""
    minute_f, hour_f, dom_f, month_f, dow_f = expr.split()
    assert dom_f == "*" and month_f == "*"
    minutes = _reference_values(minute_f, 0, 59)
    hours = _reference_values(hour_f, 0, 23)
    weekdays = _reference_values(dow_f, 0, 6)
    fixed = not minute_f.startswith("*") and not hour_f.startswith("*")

    def matches(wall: datetime) -> bool:
        cron_weekday = wall.isoweekday() % 7
        return wall.minute in minutes and wall.hour in hours and cron_weekday in weekdays

    zone = ZoneInfo(tz)
    step = timedelta(minutes=1)
    fired: set[datetime] = set()
    instant = start - timedelta(days=1)
    previous_wall: datetime | None = None
    latest_wall: datetime | None = None
    while instant <= end:
        wall = instant.astimezone(zone).replace(tzinfo=None, fold=0)
        if fixed:
            if previous_wall is not None:
                skipped = previous_wall + step
                while skipped < wall:  # wall times jumped over: fire now
                    if matches(skipped) and skipped > latest_wall:
                        fired.add(instant)
                    skipped += step
            if matches(wall) and (latest_wall is None or wall > latest_wall):
                fired.add(instant)
        elif matches(wall):
            fired.add(instant)
        previous_wall = wall
        latest_wall = wall if latest_wall is None else max(latest_wall, wall)
        instant += step
    return sorted(t for t in fired if start < t <= end)


CROSS_CHECK_EXPRESSIONS = [
    "* * * * *",
    "0 * * * *",
    "*/15 * * * *",
    "45 * * * *",
    "0 */2 * * *",
    "*/20 1-3 * * *",
    "30 2 * * *",
    "0 2,3 * * *",
    "0,30 1-3 * * *",
    "0-59/10 2 * * *",
    "45 1 * * *",
    "15 0 * * *",
    "0 0 * * *",
    "59 23 * * *",
    "30 1 * * 0",
]

CROSS_CHECK_WINDOWS = [
    (BERLIN, utc(2026, 3, 28, 6)),
    (BERLIN, utc(2026, 10, 24, 6)),
    (NEW_YORK, utc(2026, 3, 7, 6)),
    (NEW_YORK, utc(2026, 10, 31, 6)),
    (LORD_HOWE, utc(2026, 4, 3, 6)),
    (LORD_HOWE, utc(2026, 10, 2, 6)),
    (SANTIAGO, utc(2026, 4, 3, 18)),
    (SANTIAGO, utc(2026, 9, 5, 6)),
    ("Antarctica/Troll", utc(2026, 3, 28, 6)),
    ("Antarctica/Troll", utc(2026, 10, 24, 6)),
    ("Europe/London", utc(2026, 10, 24, 6)),
    ("Asia/Kolkata", utc(2026, 3, 28, 6)),
]


@pytest.mark.parametrize(("tz", "start"), CROSS_CHECK_WINDOWS)
@pytest.mark.parametrize("expr", CROSS_CHECK_EXPRESSIONS)
def test_matches_minute_by_minute_reference(expr: str, tz: str, start: datetime) -> None:
    end = start + timedelta(days=3)
    assert fire_times(expr, tz, start, end) == reference_fire_times(expr, tz, start, end)


@pytest.mark.parametrize(("tz", "start"), CROSS_CHECK_WINDOWS[:6])
@pytest.mark.parametrize("expr", ["* * * * *", "30 2 * * *", "*/15 * * * *", "45 1 * * *"])
def test_next_fire_from_every_minute_matches_reference(expr: str, tz: str, start: datetime) -> None:
    """next_fire from any instant (on and between minutes) agrees with the reference."""
    end = start + timedelta(days=3)
    expected = reference_fire_times(expr, tz, start - timedelta(days=1), end + timedelta(days=1))
    index = 0
    instant = start
    while instant < end:
        for probe in (instant, instant + timedelta(seconds=17)):
            while expected[index] <= probe:
                index += 1
            assert next_fire(expr, tz, probe) == expected[index], probe
        instant += timedelta(minutes=7)


# --- how close consecutive fire times come (the jitter's bound) -------------------------------
def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


@pytest.mark.parametrize(
    ("expr", "tz", "within", "pair"),
    [
        # Every five minutes: 300 s apart, so a jitter of 300 s is refused and 299 s is not.
        ("*/5 * * * *", "UTC", 300, (utc(2026, 6, 1, 0, 5), utc(2026, 6, 1, 0, 10))),
        ("*/5 * * * *", "UTC", 299, None),
        ("* * * * *", "UTC", 59, None),  # no two fire times are closer than a minute
        # Daily at 03:00 in Berlin: 23 h apart over the spring-forward night, 24 h otherwise.
        ("0 3 * * *", BERLIN, 23 * 3600, (utc(2027, 3, 27, 2), utc(2027, 3, 28, 1))),
        ("0 3 * * *", BERLIN, 23 * 3600 - 1, None),
        # 02:00 and 02:40 wall time; the fall-back repeats the hour: 02:40 CEST then 02:00 CET
        # come 20 minutes apart in real time.
        ("*/40 2 * * *", BERLIN, 1200, (utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1))),
        ("*/40 2 * * *", BERLIN, 1199, None),
        # Once every leap year: compared with its next fire, four years on.
        ("0 0 29 2 *", "UTC", 4 * 366 * 86400, (utc(2028, 2, 29), utc(2032, 2, 29))),
        ("0 0 29 2 *", "UTC", 4 * 365 * 86400, None),
    ],
)
def test_close_fire_times(expr, tz, within, pair):
    assert close_fire_times(expr, tz, utc(2026, 6, 1), seconds(within)) == pair
