"""The Chinese weekday and priority labels are written once (``app.tickets.calendar.WEEKDAY_NAMES``,
``app.tickets.service.PRIORITY_LABELS``); the other modules show the same words."""

from __future__ import annotations

from app.notifications import staff as staff_notices
from app.reports import service as reports
from app.tickets import calendar, holiday_notice
from app.tickets import service as tickets


def test_weekday_labels_come_from_the_calendar() -> None:
    assert calendar.WEEKDAY_NAMES == "一二三四五六日"
    assert holiday_notice.WEEKDAYS is calendar.WEEKDAY_NAMES
    assert reports.WEEKDAY_LABELS == ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]


def test_staff_notices_use_the_ticket_priority_labels() -> None:
    assert vars(staff_notices)["PRIORITY_LABELS"] is tickets.PRIORITY_LABELS
    assert tickets.PRIORITY_LABELS == {"low": "低", "normal": "普通", "high": "高", "urgent": "紧急"}


def test_the_event_rule_form_offers_the_ticket_priorities_after_its_default() -> None:
    from h5.console import channels

    assert list(channels.PRIORITY_LABELS.items()) == [("", "按路由规则"), *tickets.PRIORITY_LABELS.items()]
