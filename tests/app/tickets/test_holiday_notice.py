"""State Council holiday notices: parsing (YAML and the notice's text), storing, the year view, the API, and the
reminder to admins from 1 November."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from app.errors import ValidationFailed
from app.outbox.models import OutboxMessage
from app.tickets import calendar as bizcal
from app.tickets import holiday_notice
from app.tickets.holiday_notice import calendar_notice_check, missing_notice, parse, parse_document, parse_text
from app.tickets.models import HolidayNotice
from app.timeutil import CHINA, set_clock


@pytest.fixture(autouse=True)
def _chinesecalendar_ends_in_2026(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """chinesecalendar 1.11 knows years up to 2026; later releases must not change what these tests mean."""
    monkeypatch.setattr(bizcal, "OFFICIAL_YEARS", range(bizcal.OFFICIAL_YEARS.start, 2027))
    bizcal.official_detail.cache_clear()
    yield
    bizcal.official_detail.cache_clear()


#: the 2026 notice as published (国办发明电〔2025〕7号), pasted as text
NOTICE_2026 = """国务院办公厅关于2026年部分节假日安排的通知
经国务院批准，现将2026年元旦、春节、清明节、劳动节、端午节、中秋节和国庆节放假调休日期的具体安排通知如下。
一、元旦：1月1日（周四）至3日（周六）放假调休，共3天。1月4日（周日）上班。
二、春节：2月15日（农历腊月二十八、周日）至23日（农历正月初七、周一）放假调休，共9天。2月14日（周六）、2月28日（周六）上班。
三、清明节：4月4日（周六）至6日（周一）放假，共3天。
四、劳动节：5月1日（周五）至5日（周二）放假调休，共5天。5月9日（周六）上班。
五、端午节：6月19日（周五）至21日（周日）放假，共3天。
六、中秋节：9月25日（周五）至27日（周日）放假，共3天。
七、国庆节：10月1日（周四）至7日（周三）放假调休，共7天。9月20日（周日）、10月10日（周六）上班。
节假日期间，各地区、各部门要妥善安排好值班和安全、保卫、疫情防控等工作。
"""

#: a made-up 2027 notice in the YAML form (the real one is published in November 2026)
NOTICE_2027_YAML = """\
year: 2027
title: 国务院办公厅关于2027年部分节假日安排的通知
holidays:
  - {name: 元旦, start: 2027-01-01, end: 2027-01-03}
  - {name: 春节, start: 2027-02-05, end: 2027-02-13, workdays: [2027-01-31, 2027-02-20]}
  - {name: 清明节, start: 2027-04-03, end: 2027-04-05}
  - {name: 劳动节, start: 2027-05-01, end: 2027-05-05, workdays: [2027-04-25]}
  - {name: 端午节, start: 2027-06-09, end: 2027-06-09}
  - {name: 中秋节, start: 2027-09-15, end: 2027-09-15}
  - {name: 国庆节, start: 2027-10-01, end: 2027-10-07, workdays: [2027-09-26, 2027-10-09]}
"""


def at(y: int, mo: int, d: int, h: int = 10) -> None:
    set_clock(lambda: datetime(y, mo, d, h, tzinfo=CHINA).astimezone(UTC))


def test_the_2026_notice_text_gives_exactly_chinesecalendars_2026() -> None:
    document = parse_text(NOTICE_2026)
    assert document["year"] == 2026 and document["title"] == "国务院办公厅关于2026年部分节假日安排的通知"
    assert document["holidays"][1] == {"name": "春节", "start": "2026-02-15", "end": "2026-02-23",
                                       "workdays": ["2026-02-14", "2026-02-28"]}
    assert holiday_notice.law_mismatches(document) == []  # the law's days off all lie inside the notice's ranges
    notices = bizcal.compile_notices([document])
    day = date(2026, 1, 1)
    while day.year == 2026:
        official = bizcal.official_detail(day)
        assert official is not None
        from_notice = notices.get(day, (False, None))
        assert (from_notice[0], from_notice[1] is not None) == (official[0] and official[1] is not None,
                                                                official[1] is not None), day
        day += timedelta(days=1)


def test_yaml_and_text_are_told_apart() -> None:
    assert parse(NOTICE_2027_YAML)["holidays"][0] == {"name": "元旦", "start": "2027-01-01", "end": "2027-01-03",
                                                      "workdays": []}
    text = "一、元旦：1月1日（周五）至3日（周日）放假，共3天。\n二、端午节：6月9日（周三）放假1天。"
    assert parse(text, year=2027)["holidays"] == [
        {"name": "元旦", "start": "2027-01-01", "end": "2027-01-03", "workdays": []},
        {"name": "端午节", "start": "2027-06-09", "end": "2027-06-09", "workdays": []},
    ]
    with pytest.raises(ValidationFailed) as info:
        parse(text)
    assert info.value.message == "无法从通知正文识别年份，请指定年份（命令行 --year，接口 ?year=）"


@pytest.mark.parametrize("text, error", [
    ("一、元旦：1月1日（周四）至3日（周日）放假，共3天。",
     "节日 '元旦': 1月1日（周四） 写的是周四，但 2027-01-01 是周五"),
    ("一、元旦：1月1日至3日放假，共4天。", "节日 '元旦': 写明共 4 天，但 2027-01-01 至 2027-01-03 是 3 天"),
    ("一、元旦：1月1日至3日放假。1月4日（周一）上班。", "节日 '元旦': 调休上班日 2027-01-04 是周一，应为周六或周日"),
    ("一、元旦：放假。", "节日 '元旦': 应为“X月X日放假”或“X月X日至Y日放假”"),
])
def test_text_that_does_not_add_up_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_text(text, year=2027)
    assert info.value.code == "invalid_notice"
    assert error in info.value.details["errors"]


def test_invalid_documents_list_every_problem() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_document({"year": 2027, "colour": "red", "holidays": [
            {"name": "春节", "start": "2027-02-05", "end": "2027-02-13", "workdays": ["2027-02-06"]},
            {"name": "元宵", "start": "2027-02-13", "end": "2027-02-12"},
            {"name": "国庆节", "start": "2027-10-01", "end": "2027-10-07"},
            {"name": "国庆节 2", "start": "2027-10-07", "end": "2027-10-08"},
            {"name": "跨年", "start": "2028-03-01"},
            {"start": "2027-05-01"},
        ]})
    assert info.value.details["errors"] == [
        "colour: 未知的键，可用: year, title, source, holidays",
        "节日 '元宵': end 不能早于 start",
        "节日 '国庆节 2': 2027-10-07 与 '国庆节' 的放假日期重叠",
        "节日 '跨年': 2028-03-01 不在 2027 年通知的范围内",
        "节日 '跨年': 2028-03-01 不在 2027 年通知的范围内",
        "holidays[6]: 需要 name",
        "节日 '春节': 调休上班日 2027-02-06 在放假日期内",
    ]
    assert info.value.message.startswith("节假日通知有 7 处错误：")


async def test_import_show_year_and_law_warnings(db: None) -> None:
    document = parse(NOTICE_2027_YAML)
    result = await holiday_notice.store(document=document, imported_by="cli")
    assert result["warnings"] == []
    view = await holiday_notice.year_view(year=2027)
    assert view["basis"] == "notice" and view["notice"]["title"] == "国务院办公厅关于2027年部分节假日安排的通知"
    assert {"date": "2027-02-20", "weekday": "周六", "name": "春节", "source": "notice"} in view["workdays"]
    assert {"date": "2027-02-09", "weekday": "周二", "name": "春节", "source": "notice"} in view["days_off"]
    cal = await bizcal.default_calendar()
    assert cal.is_working_day(date(2027, 2, 20))
    # re-importing replaces the year's notice; a notice that leaves out a statutory day is stored with a warning
    short = {**document, "holidays": [h for h in document["holidays"] if h["name"] != "端午节"]}
    result = await holiday_notice.store(document=short, imported_by="cli")
    assert result["warnings"] == ["依法 2027-06-09（周三）端午节 放假，但通知中没有这一天"]
    assert await HolidayNotice.all().count() == 1
    view = await holiday_notice.year_view(year=2028)
    assert view["basis"] == "law" and view["workdays"] == []
    assert view["days_off"][0] == {"date": "2028-01-01", "weekday": "周六", "name": "元旦", "source": "law"}


async def _cards() -> list[dict[str, Any]]:
    return [{"to": r.recipient, "key": r.dedupe_key, "title": r.payload["textcard"]["title"]}
            for r in await OutboxMessage.filter(kind="staff_card").order_by("id")]


async def test_admins_are_warned_from_1_november_once_a_day_until_the_notice_is_imported(db: None) -> None:
    from tests import factories

    await factories.org()
    at(2026, 10, 31, 23)
    assert await missing_notice() is None
    assert await calendar_notice_check({}) == 0
    at(2026, 11, 1, 8)
    missing = await missing_notice()
    assert missing is not None and missing.year == 2027
    assert await calendar_notice_check({}) == 1
    assert await calendar_notice_check({}) == 1  # the same day again: still one card
    assert await _cards() == [
        {"to": "admin", "key": "card:calendar_notice:2027:2026-11-01:1", "title": "请导入 2027 年节假日安排"}]
    at(2026, 11, 2, 8)
    await calendar_notice_check({})
    assert len(await _cards()) == 2
    await holiday_notice.store(document=parse(NOTICE_2027_YAML), imported_by="cli")
    at(2026, 11, 3, 8)
    assert await missing_notice() is None
    assert await calendar_notice_check({}) == 0
    assert len(await _cards()) == 2


async def test_a_year_without_its_notice_keeps_warning_into_that_year(db: None) -> None:
    at(2027, 3, 1)
    missing = await missing_notice()
    assert missing is not None and missing.year == 2027


async def test_api_imports_notices_for_admins_only(api: Any) -> None:
    from tests import factories

    o = await factories.org()
    admin = {"Authorization": f"Bearer {await factories.token(o['people']['admin'])}"}
    agent = {"Authorization": f"Bearer {await factories.token(o['people']['agent'])}"}
    yaml_body = {"Content-Type": "application/yaml"}
    r = await api.post("/api/v1/calendar/notices", content=NOTICE_2027_YAML.encode(), headers={**agent, **yaml_body})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "只有管理员可以导入节假日通知"
    r = await api.post("/api/v1/calendar/notices", content=b"year: 2027\nholidays: [{name: \xe5\x85\x83\xe6\x97\xa6}]",
                       headers={**admin, **yaml_body})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == ("节假日通知有 1 处错误：节日 '元旦'.start: "
                                            "日期格式应为 YYYY-MM-DD，收到 None")
    r = await api.post("/api/v1/calendar/notices", content=b"year: [unclosed", headers={**admin, **yaml_body})
    assert r.status_code == 422
    assert r.json()["error"]["message"] == ("无法识别节假日通知：应为 YAML（year / holidays）"
                                            "或通知正文（一、元旦：…放假…）")
    r = await api.post("/api/v1/calendar/notices", json={"year": "soon"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_notice"
    assert await HolidayNotice.all().count() == 0
    at(2026, 12, 4)
    r = await api.get("/api/v1/calendar/notices", headers=agent)
    assert r.json()["notices"] == [] and r.json()["missing"]["year"] == 2027
    r = await api.post("/api/v1/calendar/notices?year=2027", content=NOTICE_2026.replace("2026", "2027").encode(),
                       headers={**admin, "Content-Type": "text/plain"})
    assert r.status_code == 422  # the 2026 weekdays do not fit 2027's dates
    assert "节日 '元旦': 1月1日（周四） 写的是周四，但 2027-01-01 是周五" in r.json()["error"]["details"]["errors"]
    r = await api.post("/api/v1/calendar/notices", content=NOTICE_2027_YAML.encode(), headers={**admin, **yaml_body})
    assert r.status_code == 201 and r.json()["warnings"] == []
    notice = await HolidayNotice.get(year=2027)
    assert notice.imported_by == f"staff:{o['people']['admin'].id}"
    r = await api.get("/api/v1/calendar/years/2027", headers=agent)
    assert r.status_code == 200 and r.json()["basis"] == "notice"
    assert r.json()["workdays"][0] == {"date": "2027-01-31", "weekday": "周日", "name": "春节", "source": "notice"}
