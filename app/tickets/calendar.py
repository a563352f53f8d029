"""The business calendar: working hours per group, Chinese public holidays and make-up working days (调休).

Holidays and 调休 days, date by date, come from the first of:

1. an imported State Council notice (国务院办公厅关于部分节假日安排的通知, https://www.gov.cn/zhengce/) that names the
   date, as a holiday day or a make-up working day (`app.tickets.holiday_notice`; stored in `HolidayNotice`);
2. the `chinesecalendar` package (import `chinese_calendar`), which carries the official notices of the years it
   knows;
3. the law, for years neither knows: 《全国年节及纪念日放假办法》 (13 statutory days, lunar dates included, and a
   working-day 补假 for a holiday on a weekend), computed by the `holidays` package for any year. The law gives no
   调休 weekend working days: those come only with the notice, which admins are reminded to import from 1 November
   (`holiday_notice.calendar_notice_check`).

Company-specific days off and extra working days are configured per calendar.

All arithmetic is exact to the second in the calendar's time zone; callers pass and receive aware UTC datetimes.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar.constants import holidays as _official_holidays
from holidays.countries.china import China as _HolidaysChina
from tortoise.exceptions import OperationalError

from app.errors import ValidationFailed
from app.logs import get_logger
from app.tickets.models import BusinessCalendar, GroupSettings, HolidayNotice

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


#: (is off, holiday name): off with a name is a statutory holiday, working with a name a 调休 make-up working day
DayDetail = tuple[bool, str | None]
#: dates an imported notice names, each with its DayDetail
NoticeDays = Mapping[date, DayDetail]
NO_NOTICES: NoticeDays = MappingProxyType({})

#: the years chinesecalendar carries official arrangements for
OFFICIAL_YEARS = range(min(_official_holidays).year, max(_official_holidays).year + 1)
#: chinesecalendar's English holiday names in Chinese
_OFFICIAL_NAMES = {h.value: h.chinese for h in chinese_calendar.Holiday}

_law_years_logged: set[int] = set()


def official_year(year: int) -> bool:
    """Whether chinesecalendar carries the official arrangements of `year`."""
    return year in OFFICIAL_YEARS


@lru_cache(maxsize=4096)
def official_detail(day: date) -> DayDetail | None:
    """(is off, holiday name) from chinese_calendar, or None for a year it has no data for."""
    if not official_year(day.year):
        return None
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None
    return bool(on_holiday), (_OFFICIAL_NAMES.get(str(name), str(name)) if name else None)


class _StatutoryChina(_HolidaysChina):  # type: ignore[misc]
    """China's holidays by the law alone: the notices the `holidays` package carries are left out."""

    def _add_special_holidays(self, *args: Any, **kwargs: Any) -> None:
        return None


@lru_cache(maxsize=64)
def statutory_holidays(year: int) -> Mapping[date, str]:
    """The statutory days off of `year` by law, 补假 included (Chinese names, e.g. 春节（补假）)."""
    days = _StatutoryChina(years=year, language="zh_CN")  # type: ignore[no-untyped-call]
    return MappingProxyType({d: str(n) for d, n in sorted(days.items())})


def holiday_detail(day: date, *, notices: NoticeDays = NO_NOTICES) -> DayDetail | None:
    """(is off, holiday name) of one date: an imported notice, else chinesecalendar, else the law."""
    if day in notices:
        return notices[day]
    official = official_detail(day)
    if official is not None:
        return official
    if day.year not in _law_years_logged:
        _law_years_logged.add(day.year)
        log.warning("calendar.year_by_law", year=day.year)
    name = statutory_holidays(day.year).get(day)
    return (True, name) if name else (False, None)


def day_source(day: date, *, notices: NoticeDays = NO_NOTICES) -> str:
    """Where a date's holiday status comes from: notice, official (chinesecalendar) or law."""
    if day in notices:
        return "notice"
    return "official" if official_year(day.year) else "law"


@dataclass(frozen=True)
class Calendar:
    """A compiled business calendar (pure; no database)."""

    name: str = "默认"
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=lambda: parse_weekly(DEFAULT_WEEKLY))
    public_holidays: bool = True
    extra_days_off: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    #: the dates imported State Council notices name (shared by every calendar; loaded with the calendar)
    notices: NoticeDays = field(default_factory=lambda: NO_NOTICES)

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
            detail = holiday_detail(day, notices=self.notices)
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


def compile_notices(documents: Iterable[Mapping[str, Any]]) -> NoticeDays:
    """The dates canonical notice documents name (by year; a later year's notice wins a date both name)."""
    out: dict[date, DayDetail] = {}
    for doc in sorted(documents, key=lambda d: int(d["year"])):
        for h in doc["holidays"]:
            day, end = date.fromisoformat(h["start"]), date.fromisoformat(h["end"])
            while day <= end:
                out[day] = (True, str(h["name"]))
                day += timedelta(days=1)
            for w in h.get("workdays") or []:
                out[date.fromisoformat(w)] = (False, str(h["name"]))
    return MappingProxyType(out)


def from_row(row: BusinessCalendar, *, notices: NoticeDays = NO_NOTICES) -> Calendar:
    """Compile a stored calendar."""
    cal = Calendar.build(name=row.name, timezone=row.timezone, weekly=row.weekly or DEFAULT_WEEKLY,
                         public_holidays=row.public_holidays, extra_days_off=row.extra_days_off or [],
                         extra_workdays=row.extra_workdays or [])
    return replace(cal, notices=notices)


#: compiled calendars by group id (0 = the default calendar), with the time they were loaded
_cache: dict[int, tuple[float, Calendar]] = {}
#: the compiled imported notices, with the time they were loaded
_notices_cache: list[tuple[float, NoticeDays]] = []
CACHE_SECONDS = 30.0


def invalidate() -> None:
    """Forget compiled calendars and notices (after an import; other processes refresh within CACHE_SECONDS)."""
    _cache.clear()
    _notices_cache.clear()


async def load_notices() -> NoticeDays:
    """The dates the imported State Council notices name."""
    if _notices_cache and _time.monotonic() - _notices_cache[0][0] < CACHE_SECONDS:
        return _notices_cache[0][1]
    try:
        rows = await HolidayNotice.all().order_by("year")
    except OperationalError as exc:  # a database not migrated yet: the calendars go on by chinesecalendar and law
        log.warning("calendar.notices_unavailable", error=str(exc)[:200])
        return NO_NOTICES
    notices = compile_notices(r.document for r in rows if isinstance(r.document, dict))
    _notices_cache[:] = [(_time.monotonic(), notices)]
    return notices


async def default_calendar() -> Calendar:
    """The calendar marked default, or Mon-Fri 09:00-18:00 with public holidays."""
    hit = _cache.get(0)
    if hit and _time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    notices = await load_notices()
    row = await BusinessCalendar.filter(is_default=True).first()
    cal = from_row(row, notices=notices) if row else replace(DEFAULT, notices=notices)
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
    if settings and settings.calendar:
        cal = from_row(settings.calendar, notices=await load_notices())
    else:
        cal = await default_calendar()
    _cache[group_id] = (_time.monotonic(), cal)
    return cal
