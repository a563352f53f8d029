"""智能质量 in the console: the bot's precision and answered share, suggestion acceptance, hot topics with a draft."""

from __future__ import annotations

from app.assist.models import Suggestion
from app.conversations.models import Message
from app.customers import service as customers
from app.kb import calibration
from app.kb.models import Article, BotCalibration, BotQuery
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests.h5.console.conftest import ADMIN, AGENT, Console


async def test_managers_see_the_figures_and_draft_an_article_from_a_hot_topic(console: Console) -> None:
    calibration.forget()
    for outcome, verdict in [("answered", "right"), ("answered", "wrong"), ("no_match", None), ("no_match", None)]:
        await BotQuery.create(text="优惠券怎么用不了", best_article_id=1, score=0.5, outcome=outcome, verdict=verdict)
    await BotCalibration.create(kind="fused", answer_score=0.4, answer_margin=0.2, precision=0.92,
                                answered_share=0.35, labelled=60)
    customer = await customers.create(name="赵女士")
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="优惠券怎么用不了")
    await Message.create(ticket_id=ticket.id, customer_id=customer.id, direction="out", author_kind="staff",
                         text="结算时勾选优惠券即可。")
    await Ticket.filter(id=ticket.id).update(status="resolved")
    await Suggestion.create(ticket_id=ticket.id, kind="category", value="退款", status="accepted")
    admin = await console.login(ADMIN)
    page = await admin.get("/console/intelligence")
    assert page.status_code == 200, page.text
    html = page.text
    assert "智能质量" in html and "机器人每日表现" in html
    assert "50.0%" in html  # 2 of 4 questions answered, 1 of 2 confirmed answers right
    assert "语义融合" in html and "生效中" in html
    assert "100.0%" in html  # the one decided category suggestion was accepted
    assert "优惠券怎么用不了" in html and "生成草稿" in html
    r = await console.post(admin, "/console/intelligence/draft", {"ticket_id": str(ticket.id),
                                                                  "title": "优惠券怎么用不了"},
                           page="/console/intelligence")
    assert r.status_code == 303
    article = await Article.get(source_ticket_id=ticket.id)
    assert (article.status, article.title, article.body) == ("draft", "优惠券怎么用不了", "结算时勾选优惠券即可。")
    agent = await console.login(AGENT)
    assert (await agent.get("/console/intelligence")).status_code == 403
