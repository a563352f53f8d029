"""智能助手 in Chromium: the staff ticket page rendered by the desk, every click a real form post answered by the
desk's own app (in process, its database and session); the suggestions show with their reasons, 采纳 applies the
suggested category and priority and records the acceptance, 忽略 records the dismissal, 答对了/答错了 record the
bot's verdict. Screenshots land in tests/_artifacts/assist/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.assist import service as assist
from app.assist.models import Suggestion
from app.customers import service as customers
from app.kb import understanding
from app.kb.models import Article, BotQuery
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup, Staff
from app.tickets import service as tickets
from app.tickets.models import Ticket
from h5.web import STATIC_DIR
from tests.app.assist.conftest import DESK, BagEmbedder, close_ticket
from tests.browser import PHONE, chromium, require_browser, screenshots
from tests.h5.conftest import BASE, H5

_shot = screenshots("assist")


@pytest.fixture(autouse=True)
def _model() -> Iterator[None]:
    understanding.set_embedder(BagEmbedder())
    assist.forget_index()
    assist._classifiers.clear()
    yield
    understanding.reset()
    assist.forget_index()
    assist._classifiers.clear()


def _desk_route(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> Any:
    """Chromium's requests answered by the desk's app on the test's event loop (static files from disk; the live
    update stream refused: it never ends)."""

    def handle(route: Any) -> None:
        request = route.request
        path = request.url[len(BASE):]
        if path.startswith("/static/"):
            route.fulfill(path=str(STATIC_DIR / path[len("/static/"):].split("?", 1)[0]))
            return
        if path.split("?", 1)[0].endswith("/live"):
            route.abort()
            return
        headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
        future = asyncio.run_coroutine_threadsafe(
            client.request(request.method, path, content=request.post_data_buffer, headers=headers), loop)
        r = future.result(timeout=20)
        keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "location")}
        route.fulfill(status=r.status_code, headers=keep, body=r.content)

    return handle


def _in_browser(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, first: str,
                second: str) -> dict[str, Any]:
    got: dict[str, Any] = {}
    with chromium() as browser:
        page = browser.new_page(**PHONE)
        page.route(f"{BASE}/**", _desk_route(client, loop))
        page.goto(f"{BASE}{first}")
        card = page.locator("#assist")
        got["category"] = card.locator(".assist-category").inner_text()
        got["priority"] = card.locator(".assist-priority").inner_text()
        got["reasons_visible"] = card.locator(".assist-category .assist-why li").first.is_visible()
        _shot(page, "card")
        card.locator(".assist-category button:has-text('采纳')").click()
        page.wait_for_url("**notice=assist_accepted*")
        got["after_category"] = page.locator("#assist").inner_text()
        page.locator("#assist .assist-priority button:has-text('采纳')").click()
        page.wait_for_url("**notice=assist_accepted*")
        got["after_priority"] = page.locator("#assist").inner_text()
        page.locator("#assist .assist-bot li:has-text('退款多久到账') button:has-text('答对了')").click()
        page.wait_for_url("**notice=bot_verdict*")
        page.locator("#assist .assist-bot li:has-text('发票怎么开') button:has-text('答错了')").click()
        page.wait_for_url("**notice=bot_verdict*")
        got["bot"] = page.locator("#assist .assist-bot").inner_text()
        _shot(page, "decided")
        page.goto(f"{BASE}{second}")
        page.locator("#assist .assist-category button:has-text('忽略')").click()
        page.wait_for_url("**notice=*")
        got["dismissed"] = page.locator("#assist .assist-category").inner_text()
        page.close()
    return got


async def test_the_agent_accepts_dismisses_and_judges_the_bot_in_the_browser(h5: H5) -> None:
    require_browser()
    customer = await customers.create(name="王先生")
    group = await SkillGroup.get(name="一线客服组")
    for subject, category, priority, reply in DESK * 2:
        closed = await close_ticket(customer.id, subject, category, priority, reply)
        await Ticket.filter(id=closed.id).update(group_id=group.id)
    lina = await Staff.get(userid="lina")
    first = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="电子发票在哪里下载，税号填错了",
                                 group_id=group.id, assignee_id=lina.id, priority="urgent")
    second = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款申请了还没到账",
                                  group_id=group.id, assignee_id=lina.id)
    article = await Article.create(title="如何申请退款", body="在订单页申请。", status="published")
    right = await BotQuery.create(customer_id=customer.id, text="退款多久到账", best_article_id=article.id,
                                  score=0.9, outcome="answered")
    wrong = await BotQuery.create(customer_id=customer.id, text="发票怎么开", best_article_id=article.id,
                                  score=0.8, outcome="answered")
    await assist.embed_tickets()
    await assist.train(kind="category")
    await assist.train(kind="priority")
    await h5.login_staff("lina")

    got = await asyncio.to_thread(_in_browser, h5.client, asyncio.get_running_loop(),
                                  f"/h5/tickets/{first.number}", f"/h5/tickets/{second.number}")

    assert got["category"].startswith("建议分类：发票") and "匹配词：发票" in got["category"]
    assert got["reasons_visible"] is True
    assert got["priority"].startswith("建议优先级：低") and "（当前：紧急）" in got["priority"]
    assert "建议分类" not in got["after_category"] and "建议优先级" in got["after_category"]
    assert "建议优先级" not in got["after_priority"]
    ticket = await Ticket.get(id=first.id)
    assert (ticket.category, ticket.priority) == ("发票", "low")
    decided = {s.kind: s.status for s in await Suggestion.filter(ticket_id=first.id, kind__in=("category",
                                                                                              "priority"))}
    assert decided == {"category": "accepted", "priority": "accepted"}
    assert "已确认答对" in got["bot"] and "已标记答错" in got["bot"]
    assert (await BotQuery.get(id=right.id)).verdict == "right"
    assert (await BotQuery.get(id=wrong.id)).verdict == "wrong"
    assert "已忽略" in got["dismissed"]
    dismissed = await Suggestion.get(ticket_id=second.id, kind="category")
    assert (dismissed.status, dismissed.value) == ("dismissed", "退款")
    assert (await Ticket.get(id=second.id)).category == ""
