"""A seeded desk for the assistance figures of bench/kb_eval.py: tickets written the way customers write them
(several phrasings per problem, fillers, order numbers, phones, addresses), with the category and priority a desk
ends up with, including the desk's own noise (a share of tickets filed under a neighbouring category, priorities
set by feel). Synthetic and generated from a seed: the figures compare methods on the same tickets, they do not
claim what a real desk would see.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: per category: problems (each a few ways of saying it) customers raise
PROBLEMS: dict[str, list[list[str]]] = {
    "退款": [["退款申请了还没到账", "钱怎么还没退回来", "退的钱一直没收到"],
             ["取消订单后没退钱", "订单取消了钱呢", "取消了但是没有退款"],
             ["退货寄回去了什么时候退钱", "商品已经寄回，款什么时候退", "退货后多久能收到钱"]],
    "故障": [["App 一打开就闪退", "软件老是闪退", "应用打不开一直崩溃"],
             ["付款的时候报错", "支付页面提示系统错误", "没法付款一直提示失败"],
             ["登录不了提示密码错误", "账号登不上去", "一直登录失败"]],
    "发票": [["发票抬头开错了", "抬头写错了要重开", "发票上的公司名不对"],
             ["怎么开增值税专用发票", "公司报销要专票", "需要开专用发票"],
             ["电子发票在哪下载", "发票没收到邮件", "找不到电子发票"]],
    "物流": [["快递好几天了还没到", "物流一直不更新", "包裹卡在中转站不动了"],
             ["快递显示签收了但我没收到", "没收到货却显示已签收", "东西被别人签收了"],
             ["能不能改收货地址", "地址填错了想改一下", "想换个地址收货"]],
    "咨询": [["你们周末上班吗", "客服几点下班", "营业时间是几点"],
             ["会员有什么优惠", "怎么成为会员", "会员积分怎么用"],
             ["能不能开发票以外的收据", "这个商品有保修吗", "保修期是多久"]],
    "投诉": [["快递员态度太差了", "送货的人骂人", "配送员很不耐烦还摔东西"],
             ["客服一直不回复", "找了三次客服都没人管", "客服敷衍我"],
             ["商品和描述严重不符", "图片和实物差太多", "收到的东西是假货"]],
    "安装": [["空调什么时候上门安装", "安装师傅什么时候来", "预约安装一直没人联系"],
             ["安装要另外收费吗", "师傅要收安装费合理吗", "安装材料费怎么算"],
             ["热水器装好了不出热水", "装完以后漏水", "安装后机器有异响"]],
    "账户": [["手机号换了怎么改绑定", "想换绑手机", "旧手机号不用了怎么办"],
             ["怎么注销账号", "不想用了要注销", "账户注销流程是什么"],
             ["账户被冻结了", "账号被锁了登不上", "提示账户异常被限制"]],
}
#: categories customers' words often straddle: a share of tickets ends up filed under the neighbour
NEIGHBOURS = {"退款": "投诉", "故障": "账户", "物流": "投诉", "安装": "故障", "投诉": "退款", "咨询": "账户",
              "发票": "咨询", "账户": "故障"}
OPENERS = ["你好", "在吗", "客服你好", "您好，请问一下", "麻烦问下", ""]
URGENT = ["急用", "今天必须解决", "马上要用", "很着急", "孩子明天要用"]
ANGRY = ["太过分了", "再不处理我就投诉", "什么垃圾服务", "气死了", "忍无可忍"]
DETAILS = ["订单号 {order}", "我的手机 {phone}", "地址是广东省深圳市南山区科技园路{n}号", "昨天下的单", "上周买的"]
CLOSERS = ["谢谢", "麻烦尽快处理", "等你们回复", "", ""]


@dataclass
class DeskTicket:
    subject: str
    messages: list[str]
    category: str
    priority: str
    #: the fields a good summary must keep: order_no, phone, address
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Subject and description as the assistance service reads them."""
        return f"{self.subject}\n" + "\n".join(self.messages)


def seeded_desk(n: int = 3000, seed: int = 0, mislabel: float = 0.12) -> list[DeskTicket]:
    """n tickets in creation order (the held-out part is the newest, as in app.assist.service.train)."""
    rng = random.Random(seed)
    out: list[DeskTicket] = []
    cats = list(PROBLEMS)
    for _ in range(n):
        category = rng.choice(cats)
        phrasing = rng.choice(rng.choice(PROBLEMS[category]))
        urgent = rng.random() < 0.15
        angry = rng.random() < (0.35 if category == "投诉" else 0.08)
        messages = []
        opener = rng.choice(OPENERS)
        if opener:
            messages.append(opener)
        body = phrasing + "。"
        fields: dict[str, str] = {}
        if rng.random() < 0.5:
            order = f"2026{rng.randrange(10**11, 10**12)}"
            fields["order_no"] = order
            body += f"订单号 {order}。"
        if urgent:
            body += rng.choice(URGENT) + "！"
        messages.append(body)
        if rng.random() < 0.4:
            detail = rng.choice(DETAILS[1:])
            if "{phone}" in detail:
                phone = f"13{rng.randrange(10**8, 10**9)}"
                fields["phone"] = phone
                detail = detail.format(phone=phone)
            elif "{n}" in detail:
                detail = detail.format(n=rng.randrange(1, 300))
                fields["address"] = detail.removeprefix("地址是")
            messages.append(detail + "。")
        if angry:
            messages.append(rng.choice(ANGRY) + "！！")
        closer = rng.choice(CLOSERS)
        if closer:
            messages.append(closer)
        # the desk's priority: urgency and anger raise it, with people's own feel on top
        priority = "urgent" if urgent and angry else "high" if urgent or angry else (
            "low" if category in ("咨询", "发票") else "normal")
        if rng.random() < 0.1:
            priority = rng.choice(["low", "normal", "high"])
        filed = NEIGHBOURS[category] if rng.random() < mislabel else category
        out.append(DeskTicket(subject=phrasing, messages=messages, category=filed, priority=priority, fields=fields))
    return out
