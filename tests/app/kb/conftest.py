"""Fixtures of the knowledge-base tests: a few published articles (our own text, not evaluation data)."""

from __future__ import annotations

from typing import Any

import pytest

from app.kb import service as kb
from app.kb import understanding
from app.kb.config import load_bot_config
from app.security.scope import SYSTEM

ARTICLES: list[dict[str, Any]] = [
    {"title": "如何申请退款", "category": "退款", "tags": ["退款"],
     "questions": ["怎么退钱", "退款流程是什么", "我想把钱退回来"],
     "body": "在“我的订单”中选择订单，点击“申请退款”，审核通过后 1-3 个工作日原路退回。"},
    {"title": "忘记登录密码怎么办", "category": "账号", "tags": ["账号", "密码"],
     "questions": ["密码忘了", "登录不上去了怎么找回密码", "重置密码"],
     "body": "在登录页点击“忘记密码”，用注册手机号接收验证码即可重置。"},
    {"title": "发票怎么开", "category": "发票", "tags": ["发票"],
     "questions": ["开具增值税发票", "怎么要发票", "电子发票在哪里下载"],
     "body": "订单完成后在“我的订单-发票”中申请，电子发票会发到您的邮箱。"},
    {"title": "快递多久能到", "category": "物流", "tags": ["物流"],
     "questions": ["几天能收到货", "发货后多久送达", "物流太慢了"],
     "body": "一般发货后 2-4 天送达，偏远地区 5-7 天。"},
    {"title": "会员积分怎么用", "category": "会员", "tags": ["会员"],
     "questions": ["积分有什么用", "积分可以抵扣现金吗"],
     "body": "每 100 积分可抵扣 1 元，下单时勾选“使用积分”。"},
]


@pytest.fixture(autouse=True)
def _fresh_bot_config() -> Any:
    load_bot_config.cache_clear()
    kb._cache.update(key=None, matcher=None)
    understanding.reset()
    yield
    load_bot_config.cache_clear()


@pytest.fixture
async def articles(db: None) -> list[Any]:
    return [await kb.create(actor=SYSTEM, status="published", **a) for a in ARTICLES]
