"""The admin's workbench shows a banner while a year's State Council holiday notice is missing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from app.tickets import calendar as bizcal
from app.tickets import holiday_notice
from app.timeutil import CHINA, set_clock
from tests.h5.conftest import H5

BANNER = "2027 年的国务院节假日安排通知尚未导入"


@pytest.fixture(autouse=True)
def _november_2026(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(bizcal, "OFFICIAL_YEARS", range(bizcal.OFFICIAL_YEARS.start, 2027))
    set_clock(lambda: datetime(2026, 11, 5, 10, tzinfo=CHINA).astimezone(UTC))
    yield
    set_clock(None)


async def test_admins_see_the_missing_notice_banner_until_it_is_imported(h5: H5) -> None:
    await h5.login_staff("admin")
    page = await h5.client.get("/h5/tickets")
    assert page.status_code == 200 and BANNER in page.text
    other = h5.new_client()
    await h5.login_staff("lina", other)
    assert BANNER not in (await other.get("/h5/tickets")).text
    await holiday_notice.store(document=holiday_notice.parse_document({"year": 2027, "holidays": [
        {"name": "元旦", "start": "2027-01-01", "end": "2027-01-03"}]}), imported_by="cli")
    assert BANNER not in (await h5.client.get("/h5/tickets")).text
    await other.aclose()
