"""The assistance API and the bot's labels/report/hot topics over HTTP: shapes, errors as 4xx."""

from __future__ import annotations

from typing import Any

from app.assist import service as assist
from app.kb.models import Article, BotQuery
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from tests import factories
from tests.app.assist.conftest import BagEmbedder


async def test_assist_suggestions_decisions_and_accuracy(api: Any, desk: dict[str, Any],
                                                         embedder: BagEmbedder) -> None:
    h = {"authorization": f"Bearer {await factories.token(desk['org']['people']['admin'])}"}
    await assist.embed_tickets()
    await assist.train(kind="category")
    ticket = await tickets.create(actor=SYSTEM, customer_id=desk["customer"].id, subject="退款一直没到账")
    await assist.embed_tickets()
    r = await api.get(f"/api/v1/tickets/{ticket.id}/assist", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ticket_id"], body["vector_ready"], body["category"]["value"]) == (ticket.id, True, "退款")
    sid = body["category"]["id"]
    bad = await api.post(f"/api/v1/assist/suggestions/{sid}", headers=h, json={"decision": "maybe"})
    assert bad.status_code == 422
    missing = await api.post("/api/v1/assist/suggestions/999999", headers=h, json={"decision": "accepted"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    ok = await api.post(f"/api/v1/assist/suggestions/{sid}", headers=h, json={"decision": "dismissed"})
    assert (ok.status_code, ok.json()["status"]) == (200, "dismissed")
    report = (await api.get("/api/v1/assist/accuracy", headers=h)).json()
    assert report["kinds"]["category"]["dismissed"] == 1
    assert (await api.get("/api/v1/assist/accuracy", headers=h, params={"since": "yesterday"})).status_code == 400
    assert (await api.get("/api/v1/tickets/999999/assist", headers=h)).status_code == 404


async def test_bot_labels_report_and_hot_topics(api: Any, db: None) -> None:
    org = await factories.org()
    h = {"authorization": f"Bearer {await factories.token(org['people']['lead'])}"}
    article = await Article.create(title="如何申请退款", status="published")
    row = await BotQuery.create(text="怎么退钱", best_article_id=article.id, score=0.8, outcome="answered")
    r = await api.post(f"/api/v1/kb/bot-queries/{row.id}/verdict", headers=h, json={"verdict": "right"})
    assert (r.status_code, r.json()["verdict"], r.json()["verdict_source"]) == (200, "right", "agent")
    r = await api.post(f"/api/v1/kb/bot-queries/{row.id}/verdict", headers=h, json={"verdict": "ok"})
    assert r.status_code == 422
    report = (await api.get("/api/v1/kb/bot-report", headers=h, params={"days": 7})).json()
    assert report["totals"] == {"asked": 1, "answered": 1, "labelled": 1, "right": 1, "answered_share": 1.0,
                                "precision": 1.0}
    topics = await api.get("/api/v1/kb/hot-topics", headers=h, params={"days": 0})
    assert topics.status_code == 422
    assert (await api.get("/api/v1/kb/hot-topics", headers=h)).json() == {"items": []}
    draft = await api.post("/api/v1/kb/hot-topics/draft", headers=h, json={"ticket_ids": [12345]})
    assert draft.status_code == 404
    empty = await api.post("/api/v1/kb/hot-topics/draft", headers=h, json={"ticket_ids": []})
    assert empty.status_code == 422
