"""Fixtures of the assistance tests: a stand-in sentence model and a small desk of closed tickets (our own text)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from app.assist import service as assist
from app.conversations.models import Message
from app.kb import understanding
from app.security.scope import SYSTEM
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests import factories


class BagEmbedder:
    """A stand-in model: hashed character bigrams plus one shared component, L2-normalised; counts the texts it
    embeds. The shared component puts unrelated texts near cosine 0.87, as the bundled e5 model does (the service
    rescales from understanding.DENSE_FLOOR)."""

    dim = 64

    def __init__(self, name: str = "bag-1") -> None:
        self.name = name
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for j in range(len(text) - 1):
                out[i, 1 + hashlib.sha256(text[j:j + 2].encode()).digest()[0] % (self.dim - 1)] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
            out[i, 0] = 2.5
            out[i] /= float(np.linalg.norm(out[i]))
        return out


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    understanding.reset()
    assist.forget_index()
    assist._classifiers.clear()
    yield
    understanding.reset()
    assist.forget_index()
    assist._classifiers.clear()


@pytest.fixture
def embedder() -> BagEmbedder:
    model = BagEmbedder()
    understanding.set_embedder(model)
    return model


#: (subject, category, priority, the staff reply that solved it)
DESK: list[tuple[str, str, str, str]] = [
    ("退款申请了一周还没到账", "退款", "normal", "已为您加急处理退款，1-3 个工作日原路退回。"),
    ("退款进度查询，钱什么时候退回来", "退款", "normal", "退款已审核通过，请留意银行卡到账。"),
    ("取消订单后退款没有收到", "退款", "normal", "订单取消后退款原路返回，已帮您催办。"),
    ("申请退款被拒绝了，为什么", "退款", "high", "已重新审核您的退款申请。"),
    ("发票抬头开错了需要重开", "发票", "low", "已作废原发票并按新抬头重开。"),
    ("电子发票在哪里下载", "发票", "low", "在订单详情页点击“发票”即可下载。"),
    ("公司报销需要增值税专用发票", "发票", "normal", "请在发票页选择专票并填写税号。"),
    ("发票税号填错了怎么改", "发票", "low", "已按正确税号重新开具发票。"),
    ("App 登录一直闪退打不开", "故障", "high", "请升级到最新版本后重试，问题已修复。"),
    ("支付页面报错无法付款", "故障", "urgent", "支付通道故障已修复，请重新支付。"),
    ("手机验证码收不到无法登录", "故障", "high", "短信通道已恢复，请重新获取验证码。"),
    ("页面一直加载错误提示网络异常", "故障", "high", "服务器故障已排除，请刷新页面。"),
]


async def close_ticket(customer_id: int, subject: str, category: str, priority: str, reply: str = "") -> Ticket:
    """A ticket as a finished one looks: its staff reply, status closed (set directly: test data, not a flow)."""
    ticket = await tickets.create(actor=SYSTEM, customer_id=customer_id, subject=subject, category=category,
                                  priority=priority)
    if reply:
        await Message.create(ticket_id=ticket.id, customer_id=customer_id, direction="out", author_kind="staff",
                             text=reply)
    await Ticket.filter(id=ticket.id).update(status="closed")
    return await Ticket.get(id=ticket.id)


@pytest.fixture
async def desk(db: None) -> dict[str, Any]:
    org = await factories.org()
    customer = await factories.customer()
    closed = [await close_ticket(customer.id, *row) for row in DESK * 2]
    return {"org": org, "customer": customer, "closed": closed}
