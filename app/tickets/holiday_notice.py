"""State Council holiday notices (国务院办公厅关于部分节假日安排的通知): import, view a year, remind admins.

`chinesecalendar` knows the official arrangements only up to the year of its release; later years are computed by
the law (`app.tickets.calendar`), which cannot know the 调休 make-up working days. Each November the State Council
publishes next year's notice (https://www.gov.cn/zhengce/); an admin imports it as YAML::

    year: 2027
    title: 国务院办公厅关于2027年部分节假日安排的通知
    source: https://www.gov.cn/...
    holidays:
      - {name: 元旦, start: 2027-01-01, end: 2027-01-03}
      - {name: 春节, start: 2027-02-05, end: 2027-02-13, workdays: [2027-02-07, 2027-02-20]}

or as the notice's own text pasted as is ("一、元旦：1月1日（周五）至3日（周日）放假调休，共3天。…上班。"), which is
parsed and checked strictly: every stated weekday and day count must agree with the dates. Re-importing a year
replaces its notice. From 1 November admins get a daily WeCom card (and a banner in the H5 workbench) until next
year's notice is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import yaml

from app.errors import ValidationFailed
from app.logs import get_logger
from app.staff.models import Staff
from app.tickets import calendar as bizcal
from app.tickets.models import HolidayNotice
from app.timeutil import local, utcnow
from app.uow import atomic

log = get_logger(__name__)

WEEKDAYS = bizcal.WEEKDAY_NAMES
DOCUMENT_KEYS = ("year", "title", "source", "holidays")
HOLIDAY_KEYS = ("name", "start", "end", "workdays", "days")
#: the longest stretch one holiday entry may cover (the 2020 Spring Festival, extended, had 10 days)
MAX_HOLIDAY_DAYS = 20
#: admins are reminded of next year's notice from this month on
REMIND_FROM_MONTH = 11


# ---- validation ------------------------------------------------------------------------------------------------


def _date(value: Any, where: str, errors: list[str]) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        errors.append(f"{where}: 日期格式应为 YYYY-MM-DD，收到 {value!r}")
        return None


def parse_document(data: Any) -> dict[str, Any]:
    """Validate a notice document into its canonical form (every problem reported at once)."""
    if not isinstance(data, dict):
        raise ValidationFailed("节假日通知应为映射（year / title / holidays）或通知正文", code="invalid_notice",
                               details={"errors": ["文档: 应为映射"]})
    errors: list[str] = [f"{k}: 未知的键，可用: {', '.join(DOCUMENT_KEYS)}" for k in data if k not in DOCUMENT_KEYS]
    year = data.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
        errors.append(f"year: 应为 2000 到 2100 之间的年份，收到 {year!r}")
        year = None
    raw_holidays = data.get("holidays")
    if not isinstance(raw_holidays, list) or not raw_holidays:
        errors.append("holidays: 至少需要一个节日（name / start / end / workdays）")
        raw_holidays = []
    holidays: list[dict[str, Any]] = []
    taken: dict[date, str] = {}
    workdays_seen: dict[date, str] = {}
    for i, raw in enumerate(raw_holidays):
        if not isinstance(raw, dict) or not str(raw.get("name") or "").strip():
            errors.append(f"holidays[{i + 1}]: 需要 name")
            continue
        name = str(raw["name"]).strip()
        where = f"节日 {name!r}"
        errors.extend(f"{where}.{k}: 未知的键，可用: {', '.join(HOLIDAY_KEYS)}" for k in raw if k not in HOLIDAY_KEYS)
        if any(h["name"] == name for h in holidays):
            errors.append(f"{where}: 名称重复")
        start = _date(raw.get("start"), f"{where}.start", errors)
        end = _date(raw["end"], f"{where}.end", errors) if raw.get("end") is not None else start
        workday_values = raw.get("workdays") or []
        if not isinstance(workday_values, list):
            errors.append(f"{where}.workdays: 应为日期列表")
            workday_values = []
        workdays = [d for n, v in enumerate(workday_values)
                    if (d := _date(v, f"{where}.workdays[{n + 1}]", errors)) is not None]
        if start is None or end is None:
            continue
        length = (end - start).days + 1
        if length < 1:
            errors.append(f"{where}: end 不能早于 start")
            continue
        if length > MAX_HOLIDAY_DAYS:
            errors.append(f"{where}: 放假 {length} 天，超过 {MAX_HOLIDAY_DAYS} 天，请检查日期")
            continue
        days = raw.get("days")
        if days is not None and days != length:
            errors.append(f"{where}: 写明共 {days} 天，但 {start} 至 {end} 是 {length} 天")
        span = [start + timedelta(days=n) for n in range(length)]
        if year is not None:
            lo, hi = date(year - 1, 12, 1), date(year + 1, 1, 31)
            errors.extend(f"{where}: {d} 不在 {year} 年通知的范围内" for d in (start, end, *workdays)
                          if not lo <= d <= hi)
        for d in span:
            if d in taken:
                errors.append(f"{where}: {d} 与 {taken[d]!r} 的放假日期重叠")
                break
        taken.update((d, name) for d in span)
        for d in workdays:
            if d.isoweekday() < 6:
                errors.append(f"{where}: 调休上班日 {d} 是周{WEEKDAYS[d.weekday()]}，应为周六或周日")
            if d in workdays_seen:
                errors.append(f"{where}: 调休上班日 {d} 重复")
            workdays_seen[d] = name
        holidays.append({"name": name, "start": start.isoformat(), "end": end.isoformat(),
                         "workdays": sorted(d.isoformat() for d in workdays)})
    errors.extend(f"节日 {name!r}: 调休上班日 {d} 在放假日期内" for d, name in workdays_seen.items() if d in taken)
    if errors:
        raise ValidationFailed(f"节假日通知有 {len(errors)} 处错误：{errors[0]}", code="invalid_notice",
                               details={"errors": errors})
    assert year is not None
    holidays.sort(key=lambda h: str(h["start"]))
    title = str(data.get("title") or f"{year}年部分节假日安排").strip()[:200]
    source = str(data.get("source") or "").strip()[:500] or None
    return {"year": year, "title": title, "source": source, "holidays": holidays}


# ---- the notice's own text -------------------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*[一二三四五六七八九十]+\s*、\s*(?P<name>[^：]+?)\s*：(?P<body>.+)$", re.MULTILINE)
_DAY = re.compile(r"(?:(?P<y>\d{4})年)?(?:(?P<m>\d{1,2})月)?(?P<d>\d{1,2})日(?:（(?P<note>[^）]*)）)?")
_WEEKDAY = re.compile(r"(?:周|星期)([一二三四五六日天])")
_COUNT = re.compile(r"(?:共|放假)(\d+)天")
_YEAR = re.compile(r"(?:关于|现将)\s*(\d{4})\s*年")


def _normalize(text: str) -> str:
    table = str.maketrans({"(": "（", ")": "）", ":": "：", ",": "，", ";": "；", "\u3000": " "})
    return text.translate(table)


def _days_in(sentence: str, *, year: int, where: str, errors: list[str]) -> list[date]:
    """The dates of one sentence, each inheriting a missing year or month from the one before it."""
    out: list[date] = []
    y, m = year, None
    for hit in _DAY.finditer(sentence):
        if hit["y"]:
            y = int(hit["y"])
        if hit["m"]:
            m = int(hit["m"])
        if m is None:
            errors.append(f"{where}: {hit[0]} 缺少月份")
            continue
        try:
            day = date(y, m, int(hit["d"]))
        except ValueError:
            errors.append(f"{where}: {hit[0]} 不是有效日期")
            continue
        weekday = _WEEKDAY.search(hit["note"] or "")
        if weekday:
            stated = "日" if weekday[1] == "天" else weekday[1]
            if WEEKDAYS[day.weekday()] != stated:
                errors.append(f"{where}: {hit[0]} 写的是周{stated}，但 {day} 是周{WEEKDAYS[day.weekday()]}")
        out.append(day)
    return out


def parse_text(text: str, *, year: int | None = None) -> dict[str, Any]:
    """Parse a notice pasted as text ("一、元旦：1月1日（周五）至3日（周日）放假调休，共3天。…") into a document."""
    text = _normalize(text)
    if year is None:
        found = _YEAR.search(text)
        if found is None:
            raise ValidationFailed("无法从通知正文识别年份，请指定年份（命令行 --year，接口 ?year=）",
                                   code="invalid_notice", details={"errors": ["缺少年份"]})
        year = int(found[1])
    errors: list[str] = []
    holidays: list[dict[str, Any]] = []
    for section in _SECTION.finditer(text):
        name = section["name"].strip()
        where = f"节日 {name!r}"
        sentences = [s for s in re.split(r"[。；]", section["body"]) if s.strip()]
        off = next((s for s in sentences if "放假" in s), None)
        if off is None:
            errors.append(f"{where}: 没有找到“放假”的日期")
            continue
        days = _days_in(off[: off.index("放假")], year=year, where=where, errors=errors)
        if not days or len(days) > 2:
            errors.append(f"{where}: 应为“X月X日放假”或“X月X日至Y日放假”")
            continue
        entry: dict[str, Any] = {"name": name, "start": days[0].isoformat(), "end": days[-1].isoformat()}
        count = _COUNT.search(off)
        if count:
            entry["days"] = int(count[1])
        workdays = [d for s in sentences if "上班" in s
                    for d in _days_in(s[: s.rindex("上班")], year=year, where=where, errors=errors)]
        entry["workdays"] = [d.isoformat() for d in workdays]
        holidays.append(entry)
    if not holidays and not errors:
        errors.append("没有找到“一、元旦：…放假…”这样的条目")
    if errors:
        raise ValidationFailed(f"节假日通知有 {len(errors)} 处错误：{errors[0]}", code="invalid_notice",
                               details={"errors": errors})
    title = next((line.strip() for line in text.splitlines() if "通知" in line and "节假日" in line), "")
    return parse_document({"year": year, "title": title or f"国务院办公厅关于{year}年部分节假日安排的通知",
                           "holidays": holidays})


class _DatesAsText(yaml.SafeLoader):
    """The safe loader, leaving dates as text (so 2027-13-01 gets our message, not a crash)."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse(text: str, *, year: int | None = None) -> dict[str, Any]:
    """A notice as YAML (a mapping with year/holidays) or as the notice's pasted text."""
    try:
        data = yaml.load(text, Loader=_DatesAsText)  # a SafeLoader subclass
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and ("holidays" in data or "year" in data):
        if year is not None and data.get("year") is None:
            data = {**data, "year": year}
        return parse_document(data)
    if "放假" in text:
        return parse_text(text, year=year)
    if isinstance(data, dict):
        return parse_document(data)
    raise ValidationFailed("无法识别节假日通知：应为 YAML（year / holidays）或通知正文（一、元旦：…放假…）",
                           code="invalid_notice", details={"errors": ["格式无法识别"]})


def law_mismatches(document: dict[str, Any]) -> list[str]:
    """Statutory days off of the notice's year (by law) that none of its holidays covers: worth a second look."""
    covered = bizcal.compile_notices([document])
    return [f"依法 {d.isoformat()}（周{WEEKDAYS[d.weekday()]}）{name} 放假，但通知中没有这一天"
            for d, name in bizcal.statutory_holidays(int(document["year"])).items()
            if not covered.get(d, (False, None))[0] and d.isoweekday() < 6]


# ---- storing and viewing ---------------------------------------------------------------------------------------


async def store(*, document: dict[str, Any], imported_by: str) -> dict[str, Any]:
    """Store a validated notice (replacing the year's earlier one); returns what was stored, with warnings."""
    async with atomic():
        await HolidayNotice.update_or_create(year=document["year"], defaults={
            "title": document["title"], "source_url": document["source"], "document": document,
            "imported_by": imported_by[:64]})
    bizcal.invalidate()
    log.info("calendar.notice_imported", year=document["year"], holidays=len(document["holidays"]))
    warnings = law_mismatches(document)
    if bizcal.official_year(int(document["year"])):
        warnings.insert(0, f"chinesecalendar 已有 {document['year']} 年的官方安排；通知列出的日期以通知为准")
    return {"stored": document, "warnings": warnings}


async def list_notices() -> list[dict[str, Any]]:
    """Every imported notice, by year."""
    return [{"year": n.year, "title": n.title, "source": n.source_url, "imported_by": n.imported_by,
             "updated_at": n.updated_at.isoformat(), "holidays": n.document.get("holidays", [])}
            for n in await HolidayNotice.all().order_by("year")]


async def year_view(*, year: int) -> dict[str, Any]:
    """A year as the calendars see it: days off with holiday names, 调休 working days, and where each came from."""
    if not 1950 <= year <= 2100:
        raise ValidationFailed("年份应在 1950 到 2100 之间", code="invalid_year")
    notices = await bizcal.load_notices()
    notice = await HolidayNotice.get_or_none(year=year)
    days_off: list[dict[str, Any]] = []
    workdays: list[dict[str, Any]] = []
    day = date(year, 1, 1)
    while day.year == year:
        detail = bizcal.holiday_detail(day, notices=notices)
        if detail is not None and detail[1]:
            entry = {"date": day.isoformat(), "weekday": f"周{WEEKDAYS[day.weekday()]}", "name": detail[1],
                     "source": bizcal.day_source(day, notices=notices)}
            (days_off if detail[0] else workdays).append(entry)
        day += timedelta(days=1)
    basis = "official" if bizcal.official_year(year) else "notice" if notice is not None else "law"
    return {"year": year, "basis": basis, "basis_label": BASIS_LABELS[basis],
            "notice": ({"title": notice.title, "source": notice.source_url, "imported_by": notice.imported_by}
                       if notice is not None else None),
            "days_off": days_off, "workdays": workdays}


BASIS_LABELS = {
    "official": "chinesecalendar 收录的国务院通知",
    "notice": "已导入的国务院通知（节日依法计算，调休按通知）",
    "law": "依法计算（未导入国务院通知：没有调休上班日，补假按法定规则推算）",
}


# ---- reminding admins ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingNotice:
    """A year whose holiday arrangements nobody has imported yet."""

    year: int
    message: str


async def missing_notice(*, today: date | None = None) -> MissingNotice | None:
    """This year's notice if it is missing, else next year's from 1 November, else None."""
    today = today or local(utcnow()).date()
    years = [today.year] + ([today.year + 1] if today.month >= REMIND_FROM_MONTH else [])
    imported = {n.year for n in await HolidayNotice.filter(year__in=years)}
    for year in years:
        if not bizcal.official_year(year) and year not in imported:
            return MissingNotice(year=year, message=(
                f"{year} 年的国务院节假日安排通知尚未导入：工作日历只能依法推算节日，不知道调休上班日。"
                f"请在 gov.cn 发布后用 gongdan calendar import-notice 导入。"))
    return None


async def calendar_notice_check(ctx: dict[str, Any]) -> int:
    """Daily job: from 1 November, a WeCom card to every active admin while next year's notice is missing."""
    from app.notifications import staff as staff_cards

    today = local(utcnow()).date()
    missing = await missing_notice(today=today)
    if missing is None:
        return 0
    admins = await Staff.filter(role="admin", status="active").order_by("id")
    async with atomic():
        for admin in admins:
            await staff_cards.calendar_notice_missing(staff=admin, year=missing.year, message=missing.message,
                                                     day=today)
    log.warning("calendar.notice_missing", year=missing.year, admins=len(admins))
    return len(admins)
