"""Local days and months of the operator's country, and how replies show a moment.

The clock is always passed in (`at`); nothing here reads the time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import jdatetime

from smsgw.core.records import record
from smsgw.core.text import to_persian_digits


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def now() -> datetime:
    return datetime.now(UTC)


@record
class Period:
    """The keys of the local day and month that a moment falls in."""

    day: str  # "20260723"
    month: str  # "J1405-05" (Jalali) or "G2026-07" (Gregorian)


def period_of(at: datetime, tz: str, calendar: str) -> Period:
    # Day boundaries of any real zone fall on whole minutes: cache by the minute.
    return _period_of_minute(int(at.timestamp()) // 60, tz, calendar)


@lru_cache(maxsize=64)
def _period_of_minute(minute: int, tz: str, calendar: str) -> Period:
    local = datetime.fromtimestamp(minute * 60, zone(tz))
    day = local.strftime("%Y%m%d")
    if calendar == "jalali":
        jalali = jdatetime.date.fromgregorian(date=local.date())
        return Period(day=day, month=f"J{jalali.year:04d}-{jalali.month:02d}")
    return Period(day=day, month=f"G{local.year:04d}-{local.month:02d}")


def show_moment(at: datetime, tz: str, language: str) -> str:
    """Persian: Jalali date and time in Persian digits; English: ISO-like Gregorian."""
    return _show_minute(int(at.timestamp()) // 60, tz, language)


@lru_cache(maxsize=256)
def _show_minute(minute: int, tz: str, language: str) -> str:
    local = datetime.fromtimestamp(minute * 60, zone(tz))
    if language == "fa":
        jalali = jdatetime.datetime.fromgregorian(datetime=local)
        return to_persian_digits(jalali.strftime("%Y/%m/%d %H:%M"))
    return local.strftime("%Y-%m-%d %H:%M")


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 with an offset (required); raises ValueError otherwise."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return moment
