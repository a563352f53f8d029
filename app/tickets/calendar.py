"""The business calendar: working hours per group, Chinese public holidays and make-up working days (调休).

Holidays and 调休 days come from the `chinesecalendar` package (import `chinese_calendar`), which follows the State
Council's yearly notice (国务院办公厅关于部分节假日安排的通知, https://www.gov.cn/zhengce/). Company-specific days off
and extra working days are configured per calendar. A year the package does not know yet falls back to the weekly
hours alone (and is logged once), so SLA maths never stops.

All arithmetic is exact to the second in the calendar's time zone; callers pass and receive aware UTC datetimes.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar

from app.errors import ValidationFailed
from app.logs import get_logger
from app.tickets.models import BusinessCalendar, GroupSettings

log = get_logger(__name__)

WEEKDAY_NAMES = "一二三四五六日"
#: Monday to Friday, 09:00-12:00 and 13:00-18:00 (the usual Chinese office day with a lunch break)
DEFAULT_WEEKLY: dict[str, list[list[str]]] = {
    **{str(d): [["09:00", "12:00"], ["13:00", "18:00"]] for d in range(1, 6)},
    "6": [],
    "7": [],
}
#: the longest stretch searched for open time (a calendar with no hours at all would loop forever)
MAX_DAYS = 3 * 366

Interval = tuple[int, int]  # seconds from local midnight, [start, end)


def _parse_clock(text: str, *, where: str) -> int:
    try:
        hh, mm = str(text).split(":")
        h, m = int(hh), int(mm)
    except ValueError as exc:
        raise ValidationFailed(f"{where}: 时间格式应为 HH:MM，收到 {text!r}", code="invalid_calendar") from exc
    if not (0 <= m < 60 and (0 <= h < 24 or (h == 24 and m == 0))):
        raise ValidationFailed(f"{where}: 时间 {text!r} 超出范围", code="invalid_calendar")
    return h * 3600 + m * 60


def parse_weekly(weekly: Mapping[str, Any]) -> dict[int, tuple[Interval, ...]]:
    """Validate {"1": [["09:00", "18:00"]], ...} into sorted, non-overlapping second intervals per ISO weekday."""
    out: dict[int, tuple[Interval, ...]] = {d: () for d in range(1, 8)}
    for key, spans in weekly.items():
        try:
            day = int(key)
        except ValueError as exc:
            raise ValidationFailed(f"工作时间的星期应为 1-7，收到 {key!r}", code="invalid_calendar") from exc
        if not 1 <= day <= 7:
            raise ValidationFailed(f"工作时间的星期应为 1-7，收到 {key!r}", code="invalid_calendar")
        parsed: list[Interval] = []
        for span in spans or []:
            if not isinstance(span, list | tuple) or len(span) != 2:
                raise ValidationFailed(f"星期{key}: 时段应为 [开始, 结束]", code="invalid_calendar")
            start = _parse_clock(span[0], where=f"星期{key}")
            end = _parse_clock(span[1], where=f"星期{key}")
            if end <= start:
                raise ValidationFailed(f"星期{key}: 结束时间必须晚于开始时间", code="invalid_calendar")
            parsed.append((start, end))
        parsed.sort()
        for (_, e1), (s2, _) in pairwise(parsed):
            if s2 < e1:
                raise ValidationFailed(f"星期{key}: 时段重叠", code="invalid_calendar")
        out[day] = tuple(parsed)
    return out


def _parse_dates(values: Iterable[Any], *, what: str) -> frozenset[date]:
    out = set()
    for v in values or []:
        try:
            out.add(v if isinstance(v, date) else date.fromisoformat(str(v)))
        except ValueError as exc:
            raise ValidationFailed(f"{what}: 日期格式应为 YYYY-MM-DD，收到 {v!r}", code="invalid_calendar") from exc
    return frozenset(out)


_unsupported_years_logged: set[int] = set()


@lru_cache(maxsize=4096)
def holiday_detail(day: date) -> tuple[bool, str | None] | None:
    """(is off, holiday name) from chinese_calendar, or None for a year it has no data for."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        if day.year not in _unsupported_years_logged:
            _unsupported_years_logged.add(day.year)
            log.warning("calendar.year_unsupported", year=day.year)
        return None
    return bool(on_holiday), (str(name) if name else None)


@dataclass(frozen=True)
class Calendar:
    """A compiled business calendar (pure; no database)."""

    name: str = "默认"
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=lambda: parse_weekly(DEFAULT_WEEKLY))
    public_holidays: bool = True
    extra_days_off: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()

    @classmethod
    def build(cls, *, name: str = "默认", timezone: str = "Asia/Shanghai", weekly: Mapping[str, Any] | None = None,
              public_holidays: bool = True, extra_days_off: Sequence[Any] = (),
              extra_workdays: Sequence[Any] = ()) -> Calendar:
        """Validate raw settings into a Calendar."""
        try:
            tz = ZoneInfo(timezone)
        except (KeyError, ValueError) as exc:
            raise ValidationFailed(f"未知时区 {timezone!r}", code="invalid_calendar") from exc
        return cls(name=name, tz=tz, weekly=parse_weekly(DEFAULT_WEEKLY if weekly is None else weekly),
                   public_holidays=public_holidays,
                   extra_days_off=_parse_dates(extra_days_off, what="公司休息日"),
                   extra_workdays=_parse_dates(extra_workdays, what="公司加班日"))

    def intervals(self, day: date) -> tuple[Interval, ...]:
        """The open intervals of one local date."""
        if day in self.extra_days_off:
            return ()
        weekday = day.isoweekday()
        if day in self.extra_workdays:
            return self.weekly[weekday] or self.weekly[1]
        if self.public_holidays:
            detail = holiday_detail(day)
            if detail is not None:
                off, name = detail
                if off and name:  # a statutory holiday (国庆节, 春节 ...), weekends inside it included
                    return ()
                if not off and name:  # 调休: a weekend day worked to make up for a holiday
                    return self.weekly[weekday] or self.weekly[1]
        return self.weekly[weekday]

    def is_working_day(self, day: date) -> bool:
        """Whether the date has any working hours."""
        return bool(self.intervals(day))

    def _spans(self, start: datetime) -> Iterable[tuple[datetime, datetime]]:
        """Open spans (local, aware) from the date of `start` onwards, in order."""
        day = start.astimezone(self.tz).date()
        for _ in range(MAX_DAYS):
            midnight = datetime.combine(day, time(0), tzinfo=self.tz)
            for s, e in self.intervals(day):
                yield midnight + timedelta(seconds=s), midnight + timedelta(seconds=e)
            day += timedelta(days=1)

    def is_open(self, at: datetime) -> bool:
        """Whether `at` falls inside working hours."""
        local = at.astimezone(self.tz)
        midnight = datetime.combine(local.date(), time(0), tzinfo=self.tz)
        offset = (local - midnight).total_seconds()
        return any(s <= offset < e for s, e in self.intervals(local.date()))

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the start of the next working period (UTC)."""
        for s, e in self._spans(at):
            if e > at:
                return max(s, at).astimezone(UTC)
        raise ValidationFailed(f"日历 {self.name} 在 {MAX_DAYS} 天内没有工作时间", code="calendar_never_open")

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant `seconds` of working time after `start` (UTC); non-positive seconds return `start`."""
        if seconds <= 0:
            return start.astimezone(UTC)
        left = float(seconds)
        for s, e in self._spans(start):
            if e <= start:
                continue
            begin = max(s, start)
            available = (e - begin).total_seconds()
            if left <= available:
                return (begin + timedelta(seconds=left)).astimezone(UTC)
            left -= available
        raise ValidationFailed(f"日历 {self.name} 在 {MAX_DAYS} 天内没有足够的工作时间", code="calendar_never_open")

    def seconds_between(self, a: datetime, b: datetime) -> float:
        """Working seconds from a to b (negative when b is before a)."""
        if b < a:
            return -self.seconds_between(b, a)
        total = 0.0
        for s, e in self._spans(a):
            if s >= b:
                break
            lo, hi = max(s, a), min(e, b)
            if hi > lo:
                total += (hi - lo).total_seconds()
        return total

    def describe(self, at: datetime) -> str:
        """A local time as people read it in a message, e.g. 10月8日（周四）09:00."""
        local = at.astimezone(self.tz)
        return f"{local.month}月{local.day}日（周{WEEKDAY_NAMES[local.weekday()]}）{local:%H:%M}"

    def to_document(self) -> dict[str, Any]:
        """The calendar in its YAML/JSON form."""
        def clock(sec: int) -> str:
            return f"{sec // 3600:02d}:{sec % 3600 // 60:02d}"

        return {
            "name": self.name,
            "timezone": self.tz.key,
            "weekly": {str(d): [[clock(s), clock(e)] for s, e in self.weekly[d]] for d in range(1, 8)},
            "public_holidays": self.public_holidays,
            "extra_days_off": sorted(d.isoformat() for d in self.extra_days_off),
            "extra_workdays": sorted(d.isoformat() for d in self.extra_workdays),
        }


DEFAULT = Calendar()


def from_row(row: BusinessCalendar) -> Calendar:
    """Compile a stored calendar."""
    return Calendar.build(name=row.name, timezone=row.timezone, weekly=row.weekly or DEFAULT_WEEKLY,
                          public_holidays=row.public_holidays, extra_days_off=row.extra_days_off or [],
                          extra_workdays=row.extra_workdays or [])


#: compiled calendars by group id (0 = the default calendar), with the time they were loaded
_cache: dict[int, tuple[float, Calendar]] = {}
CACHE_SECONDS = 30.0


def invalidate() -> None:
    """Forget compiled calendars (after an import; other processes refresh within CACHE_SECONDS)."""
    _cache.clear()


async def default_calendar() -> Calendar:
    """The calendar marked default, or Mon-Fri 09:00-18:00 with public holidays."""
    hit = _cache.get(0)
    if hit and _time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    row = await BusinessCalendar.filter(is_default=True).first()
    cal = from_row(row) if row else DEFAULT
    _cache[0] = (_time.monotonic(), cal)
    return cal


async def for_group(*, group_id: int | None) -> Calendar:
    """The calendar a group works by (its own, else the default)."""
    if group_id is None:
        return await default_calendar()
    hit = _cache.get(group_id)
    if hit and _time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    settings = await GroupSettings.filter(group_id=group_id).select_related("calendar").first()
    cal = from_row(settings.calendar) if settings and settings.calendar else await default_calendar()
    _cache[group_id] = (_time.monotonic(), cal)
    return cal
