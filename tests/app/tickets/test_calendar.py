"""The business calendar: weekly hours, Chinese public holidays and 调休 days (chinese_calendar, then imported
notices and the law), days off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from app.errors import ValidationFailed
from app.tickets import calendar as bizcal
from app.tickets.calendar import Calendar, compile_notices, official_year
from app.timeutil import CHINA


def cn(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=CHINA)


CAL = Calendar.build()  # Mon-Fri 09:00-12:00, 13:00-18:00, public holidays on


@pytest.fixture(autouse=True)
def _chinesecalendar_ends_in_2026(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """chinesecalendar 1.11 knows years up to 2026; later releases must not change what these tests mean."""
    monkeypatch.setattr(bizcal, "OFFICIAL_YEARS", range(bizcal.OFFICIAL_YEARS.start, 2027))
    bizcal.official_detail.cache_clear()
    yield
    bizcal.official_detail.cache_clear()



def test_working_days_follow_the_state_council_notice() -> None:
    assert CAL.is_working_day(date(2025, 9, 26))  # Friday
    assert not CAL.is_working_day(date(2025, 9, 27))  # Saturday
    assert CAL.is_working_day(date(2025, 9, 28))  # Sunday, 调休 for National Day
    assert not CAL.is_working_day(date(2025, 10, 1))  # 国庆节
    assert not CAL.is_working_day(date(2025, 10, 6))  # 中秋节 (Monday)
    assert CAL.is_working_day(date(2025, 10, 11))  # Saturday, 调休
    # a 调休 weekend day works Monday's hours
    assert CAL.intervals(date(2025, 10, 11)) == CAL.intervals(date(2025, 10, 13))


def test_across_a_weekend_to_the_minute() -> None:
    start = cn(2025, 9, 19, 17, 30)  # Friday
    assert CAL.add(start, 2 * 3600) == cn(2025, 9, 22, 10, 30).astimezone(UTC)


def test_across_national_day_and_a_tiaoxiu_saturday() -> None:
    start = cn(2025, 9, 30, 16, 0)  # Tuesday before 国庆
    assert CAL.add(start, 4 * 3600) == cn(2025, 10, 9, 11, 0).astimezone(UTC)
    # 2 h on 9-30, 8 h on 10-09, 8 h on 10-10, then Saturday 10-11 (调休) 09-12 and 13-16
    assert CAL.add(start, 24 * 3600) == cn(2025, 10, 11, 16, 0).astimezone(UTC)


def test_lunch_break_and_exact_interval_end() -> None:
    assert CAL.add(cn(2025, 9, 22, 11, 30), 3600) == cn(2025, 9, 22, 13, 30).astimezone(UTC)
    assert CAL.add(cn(2025, 9, 22, 17, 0), 3600) == cn(2025, 9, 22, 18, 0).astimezone(UTC)
    assert CAL.add(cn(2025, 9, 22, 20, 0), 60) == cn(2025, 9, 23, 9, 1).astimezone(UTC)


def test_seconds_between_is_the_inverse_of_add() -> None:
    start = cn(2025, 9, 30, 16, 0)
    due = CAL.add(start, 24 * 3600)
    assert CAL.seconds_between(start, due) == 24 * 3600
    assert CAL.seconds_between(due, start) == -24 * 3600
    assert CAL.seconds_between(cn(2025, 10, 1, 9), cn(2025, 10, 8, 18)) == 0


def test_open_and_next_open() -> None:
    assert CAL.is_open(cn(2025, 9, 22, 9, 0))
    assert not CAL.is_open(cn(2025, 9, 22, 12, 30))
    assert not CAL.is_open(cn(2025, 10, 3, 10, 0))
    assert CAL.next_open(cn(2025, 9, 30, 19, 0)) == cn(2025, 10, 9, 9, 0).astimezone(UTC)
    assert CAL.describe(CAL.next_open(cn(2025, 9, 30, 19, 0))) == "10月9日（周四）09:00"


def test_company_days_off_and_extra_workdays() -> None:
    cal = Calendar.build(extra_days_off=["2025-09-22"], extra_workdays=["2025-09-20"])
    assert not cal.is_working_day(date(2025, 9, 22))
    assert cal.is_working_day(date(2025, 9, 20))
    assert cal.add(cn(2025, 9, 19, 17, 30), 2 * 3600) == cn(2025, 9, 20, 10, 30).astimezone(UTC)


def test_seven_day_calendar_without_public_holidays() -> None:
    cal = Calendar.build(weekly={str(d): [["08:00", "22:00"]] for d in range(1, 8)}, public_holidays=False)
    assert cal.add(cn(2025, 10, 1, 21, 0), 2 * 3600) == cn(2025, 10, 2, 9, 0).astimezone(UTC)


def test_years_chinesecalendar_does_not_know_follow_the_law() -> None:
    assert not official_year(2031)
    assert not CAL.is_working_day(date(2031, 10, 1))  # 国庆节 by law, a Wednesday
    assert not CAL.is_working_day(date(2031, 10, 3))
    assert CAL.is_working_day(date(2031, 10, 6))  # Monday after: the law gives no 补假 (no weekend holiday)
    assert not CAL.is_working_day(date(2031, 10, 4))  # Saturday: weekly hours


def test_new_year_2027_after_chinesecalendar_runs_out() -> None:
    # issue 10, observation 9: on 2026-12-31 19:00 customers were told "1月1日（周五）09:00" - 元旦
    assert official_year(2026) and not official_year(2027)
    evening = cn(2026, 12, 31, 19, 0)
    assert CAL.next_open(evening) == cn(2027, 1, 4, 9, 0).astimezone(UTC)
    assert CAL.describe(CAL.next_open(evening)) == "1月4日（周一）09:00"
    # what a notice for 2027 would say (元旦 1月1日（周五）至3日（周日）放假，共3天, no make-up day) changes nothing
    noticed = replace(CAL, notices=compile_notices([{"year": 2027, "holidays": [
        {"name": "元旦", "start": "2027-01-01", "end": "2027-01-03", "workdays": []}]}]))
    assert noticed.next_open(evening) == cn(2027, 1, 4, 9, 0).astimezone(UTC)


def test_spring_festival_2027_and_2028_by_law() -> None:
    # 2027: 除夕 Fri 2-5, 初一..初三 Sat 2-6 to Mon 2-8, 补假 for the weekend on Tue 2-9 and Wed 2-10
    assert CAL.is_working_day(date(2027, 2, 4))
    assert [d for d in range(5, 11) if CAL.is_working_day(date(2027, 2, d))] == []
    assert CAL.is_working_day(date(2027, 2, 11))
    assert CAL.next_open(cn(2027, 2, 4, 18, 0)) == cn(2027, 2, 11, 9, 0).astimezone(UTC)
    # 2028: 除夕 Tue 1-25 to 初三 Fri 1-28, all weekdays: no 补假
    assert CAL.is_working_day(date(2028, 1, 24))
    assert [d for d in range(25, 29) if CAL.is_working_day(date(2028, 1, d))] == []
    assert CAL.is_working_day(date(2028, 1, 31))


NOTICE_2027 = compile_notices([{"year": 2027, "holidays": [
    {"name": "春节", "start": "2027-02-05", "end": "2027-02-13", "workdays": ["2027-01-31", "2027-02-20"]}]}])


def test_an_imported_notices_tiaoxiu_saturday_is_a_working_day() -> None:
    cal = replace(CAL, notices=NOTICE_2027)
    assert cal.is_working_day(date(2027, 2, 20))  # Saturday, 调休
    assert cal.intervals(date(2027, 2, 20)) == cal.intervals(date(2027, 2, 22))
    assert cal.is_working_day(date(2027, 1, 31))  # Sunday, 调休
    assert not cal.is_working_day(date(2027, 2, 11))  # by law a Thursday; the notice makes it a day off
    assert not CAL.is_working_day(date(2027, 2, 20))  # without the notice: a plain Saturday
    # 8 h left on Friday 2-19 from 10:00 -> 7 h that day, then 1 h on the 调休 Saturday
    assert cal.add(cn(2027, 2, 19, 10, 0), 8 * 3600) == cn(2027, 2, 20, 10, 0).astimezone(UTC)
    # other holidays of 2027 still follow the law
    assert not cal.is_working_day(date(2027, 10, 1))


@pytest.mark.parametrize("weekly, message", [
    ({"8": []}, "星期应为 1-7"),
    ({"1": [["9:00", "8:00"]]}, "结束时间必须晚于开始时间"),
    ({"1": [["09:00", "12:00"], ["11:00", "13:00"]]}, "时段重叠"),
    ({"1": [["nine", "12:00"]]}, "HH:MM"),
])
def test_invalid_hours_are_refused_with_a_clear_message(weekly: dict[str, list[list[str]]], message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        Calendar.build(weekly=weekly)
    assert message in info.value.message


def test_document_round_trip() -> None:
    cal = Calendar.build(name="技术", extra_days_off=["2025-12-31"])
    assert Calendar.build(**cal.to_document()).to_document() == cal.to_document()
