"""A handful of published Chinese articles for the demo desk (`gongdan seed`, `make run`)."""

from __future__ import annotations

from typing import Any

from app.kb import service
from app.kb.models import Article
from app.security.scope import SYSTEM

ARTICLES: list[dict[str, Any]] = [
    {"title": "如何申请退款", "category": "退款", "tags": ["退款", "售后"],
     "questions": ["怎么退钱", "退款流程是什么", "我想把钱退回来", "退款多久到账"],
     "body": "在“我的订单”中找到订单，点击“申请退款”并填写原因。审核通过后，款项 1-3 个工作日原路退回。"},
    {"title": "忘记登录密码怎么办", "category": "账号", "tags": ["账号"],
     "questions": ["密码忘了", "登录不上去怎么找回密码", "重置密码", "账号登录不了"],
     "body": "在登录页点击“忘记密码”，用注册手机号接收验证码即可重置密码。"},
    {"title": "发票怎么开", "category": "发票", "tags": ["发票"],
     "questions": ["开具增值税发票", "怎么要发票", "电子发票在哪里下载", "开专票"],
     "body": "订单完成后在“我的订单-发票”中申请。电子发票会发送到您填写的邮箱，专用发票请填写完整税号与开户行。"},
    {"title": "快递多久能到", "category": "物流", "tags": ["物流"],
     "questions": ["几天能收到货", "发货后多久送达", "物流怎么不动了", "查快递"],
     "body": "一般发货后 2-4 天送达，偏远地区 5-7 天。物流信息可在“我的订单-查看物流”中查询。"},
    {"title": "上门维修怎么预约", "category": "报修", "tags": ["报修", "售后"],
     "questions": ["怎么约师傅上门", "维修要多久", "保修期内维修收费吗"],
     "body": "回复“报修”并按提示留下地址和电话，我们会在 24 小时内联系您预约上门时间。保修期内免费维修。"},
    {"title": "会员积分怎么用", "category": "会员", "tags": ["会员"],
     "questions": ["积分有什么用", "积分可以抵扣现金吗", "积分会过期吗"],
     "body": "每 100 积分可抵扣 1 元，下单时勾选“使用积分”。积分自获得起一年内有效。"},
]


async def seed_articles() -> int:
    """Publish the demo articles once (nothing when the knowledge base has any article)."""
    if await Article.exists():
        return 0
    for spec in ARTICLES:
        await service.create(actor=SYSTEM, status="published", note="演示数据", **spec)
    return len(ARTICLES)
