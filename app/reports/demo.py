"""A month of desk traffic for `make run` and the dashboards' tests, made the way real traffic is made.

Customers write on every channel (公众号, 微信客服 with its bot, 企业微信 via the chat sidebar, email, web chat) and
go through `app.intake` (the bot, conversion rules, routing, SLA, assignment); agents reply, ask, resolve and
reassign through `app.tickets.service`; customers answer the 1/2 question and rate in the chat (the survey) or
on the H5 page (`app.tickets.ratings`), or write again and reopen; the crons (SLA checks, after-hours release,
silent close) run on the simulated clock; the outbox rows are settled the way the platform would answer (mostly
sent, some failed or dead-lettered, template receipts) and the raw callbacks are recorded with the odd failure.
So every rollup is fed the normal way, and `app.reports.jobs.rebuild` turns the rows into figures.

The clock: `app.timeutil.set_clock` plus, while the month is written, tortoise's own `auto_now`/`auto_now_add`
(`tortoise.timezone.now`), so `created_at` columns carry the simulated times. Both are restored afterwards.
Everything is drawn from one seeded `random.Random`, so a given (seed, end) writes the same month.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import tortoise.timezone as tortoise_tz
from tortoise.expressions import Q

from app import intake
from app.channels.base import IDENTITY_KIND, InboundMessage
from app.channels.models import ChannelAccount, InboundEvent
from app.customers import service as customers
from app.customers.models import Customer
from app.errors import DomainError
from app.outbox import service as outbox
from app.outbox.models import OutboxMessage
from app.security.scope import Actor, actor_for
from app.staff.models import SkillGroup, Staff
from app.tickets import assignment, closing, ratings, sla, states
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import CHINA, set_clock, utcnow

__all__ = ["DEMO_ACCOUNTS", "MonthSummary", "demo_clock", "seed_month"]

#: the demo channel accounts: (kind, key, name, config); inactive, so no poller or pull ever reaches for them
DEMO_ACCOUNTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("wechat_mp", "demo-mp", "示例科技服务号", {}),
    ("wecom_kf", "demo-kf", "示例科技微信客服", {"bot": True}),
    ("email", "demo-mail", "客服邮箱 service@example.com", {"every_message": True}),
    ("webchat", "demo-web", "官网在线客服", {}),
]
#: share of each way in: channel kind, or "sidebar" (企业微信: staff raise the ticket in the chat sidebar), "api"
CHANNEL_WEIGHTS = {"wechat_mp": 34, "wecom_kf": 30, "sidebar": 10, "email": 11, "webchat": 12, "api": 3}
#: conversations started per hour of the day (China time), Monday to Friday; weekends are 55% of it
HOUR_WEIGHTS = [1, 0, 0, 0, 0, 1, 2, 4, 8, 12, 14, 12, 7, 9, 12, 13, 11, 9, 7, 7, 8, 7, 4, 2]

FAMILY = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
#: keyword conversations: text, what follows when an agent asks back
KEYWORD_TEXTS = [
    "订单 {order} 申请退款一周了还没到账",
    "收到的商品有破损，要求退货退款，订单号 {order}",
    "空调不制冷了，需要报修",
    "洗衣机漏水，怎么预约维修",
    "App 登录一直报错 500",
    "小程序支付时提示故障，付不了款",
    "需要开具增值税专用发票，公司抬头已发",
    "发票抬头开错了，怎么重开",
    "我要投诉你们的快递员，态度太差了",
    "投诉：客服电话一直打不通",
    "要求赔偿，送货晚了三天",
]
SMALL_TALK = ["你好", "在吗", "我想问一下", "上周买的东西", "到现在还没收到货", "能帮我看看吗"]
BOT_ANSWERABLE = ["密码忘了怎么办", "退款多久能到账？", "发票怎么开", "快递多久能到", "积分可以抵扣现金吗",
                  "怎么约师傅上门"]
BOT_MISSES = [("你们门店几点关门", "线下门店在哪"), ("能不能便宜点", "有没有优惠券"),
              ("礼品卡怎么绑定", "礼品卡余额查不到"), ("可以开到付吗", "能货到付款吗"),
              ("你们周末发货吗", "周日能送到吗")]
EMAIL_SUBJECTS = ["合作咨询：批量采购报价", "退款申请 订单 {order}", "发票邮寄地址变更", "产品故障反馈",
                  "对售后服务的意见", "关于上月对账单的问题"]
REPLIES = ["您好，已收到您的问题，正在为您核实，请稍候。", "您好，麻烦提供一下订单号和下单手机号，方便我们查询。",
           "已经为您登记，相关同事会尽快处理。", "已为您加急处理，预计 1-2 个工作日内完成。"]
FOLLOW_UPS = ["好的，订单号是 {order}", "请尽快处理，谢谢", "还要等多久？", "收到，谢谢"]
REOPEN_TEXTS = ["还是不行，问题没有解决", "退款还是没到账", "又坏了", "2"]
RESOLVE_TEXTS = ["问题已处理完毕，如有疑问请随时联系我们。", "已为您办理完成，请查收。"]
FAILED_CALLBACKS = ["签名校验失败", "消息解密失败：PKCS7 填充错误", "处理超时，已重试 5 次"]


@contextmanager
def demo_clock(start: datetime) -> Iterator[Callable[[datetime], None]]:
    """Move the desk's clock and tortoise's auto timestamps together; yields a function that sets the time."""
    now = [start]
    saved = tortoise_tz.now

    def move(to: datetime) -> None:
        now[0] = max(now[0], to)

    set_clock(lambda: now[0])
    tortoise_tz.now = lambda: now[0]  # auto_now / auto_now_add read it at every save
    try:
        yield move
    finally:
        tortoise_tz.now = saved
        set_clock(None)


@dataclass
class MonthSummary:
    """What the month wrote (for the CLI line and the tests)."""

    conversations: int = 0
    tickets: int = 0
    messages: int = 0
    replies: int = 0
    resolved: int = 0
    reopened: int = 0
    ratings: int = 0
    failed_callbacks: int = 0
    outbox_failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (JSON output of the CLI)."""
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"errors": len(self.errors)}


Step = Callable[[], Awaitable[None]]


class _Month:
    """The simulation: a heap of (when, seq, step); each step may schedule more."""

    def __init__(self, *, rng: random.Random, start: datetime, end: datetime, move: Callable[[datetime], None],
                 accounts: dict[str, ChannelAccount], groups: dict[int, list[Staff]], actors: dict[int, Actor],
                 sidebar_staff: list[Staff]) -> None:
        self.rng, self.start, self.end, self.move = rng, start, end, move
        self.accounts, self.groups, self.actors, self.sidebar_staff = accounts, groups, actors, sidebar_staff
        self.heap: list[tuple[datetime, int, Step]] = []
        self.seq = itertools.count()
        self.msg_ids = itertools.count(1)
        self.summary = MonthSummary()
        self.customers: dict[str, list[str]] = {kind: [] for kind in IDENTITY_KIND}
        self.order_seq = itertools.count(1001)
        #: something ran since the outbox was last settled
        self.wrote = False

    # ---- scheduling ---------------------------------------------------------------------------------------------

    def at(self, when: datetime, step: Step) -> None:
        if when <= self.end:
            heapq.heappush(self.heap, (when, next(self.seq), step))

    async def run(self) -> None:
        tick = self.start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while self.heap:
            when, _, step = heapq.heappop(self.heap)
            while tick <= when:
                await self._crons(tick)
                tick += timedelta(hours=1)
            self.move(when)
            self.wrote = True
            try:
                await step()
            except DomainError as exc:  # a conflict a real agent would see too: the story of that ticket ends
                self.summary.errors.append(f"{type(exc).__name__}: {exc.message}")
        while tick <= self.end:
            await self._crons(tick)
            tick += timedelta(hours=1)
        self.move(self.end)
        await self._settle_outbox()

    async def _crons(self, now: datetime) -> None:
        """What the worker's crons would have done by `now` (hourly is close enough for a month's figures); one
        read says whether the SLA and after-hours crons have anything to do, as their own index reads would."""
        self.move(now)
        due = await Ticket.filter(Q(sla_next_check_at__lte=now) | Q(after_hours_until__lte=now)).exists()
        if due:
            self.wrote = True
            await sla.run_due(now=now)
            if await assignment.release_after_hours(now=now):
                await assignment.assign_waiting()
        if local_hour(now) == 3 and await closing.close_silent(now=now):
            self.wrote = True
        if self.wrote:  # only steps and the SLA cron write outbox rows
            await self._settle_outbox()
            self.wrote = False

    async def _settle_outbox(self) -> None:
        """Answer the pending outbox rows as the platforms would: mostly sent, a few failed or dead-lettered."""
        pending: list[Any] = list(await OutboxMessage.filter(status="pending").order_by("id").values_list("id",
                                                                                                      flat=True))
        for row_id in pending:
            row = await outbox.claim(outbox_id=int(row_id))
            if row is None:
                continue
            roll = self.rng.random()
            if roll < 0.015:
                await outbox.mark_failed(row=row, error="48 小时客服消息窗口已过", code="45015")
                self.summary.outbox_failed += 1
            elif roll < 0.025:
                await outbox.schedule_retry(row=row, error="接口超时", delay=0, max_attempts=row.attempts)
                self.summary.outbox_failed += 1
            else:
                provider_id = f"demo-{row.id}"
                await outbox.mark_sent(row=row, provider_msg_id=provider_id, detail={})
                if row.kind == "template_message":
                    state = "failed:user block" if self.rng.random() < 0.06 else "success"
                    await outbox.record_delivery_report(provider_msg_id=provider_id, state=state)

    # ---- customers and their messages ---------------------------------------------------------------------------

    def customer_handle(self, kind: str) -> str:
        """A returning customer now and then, else a new one."""
        known = self.customers[kind]
        if known and self.rng.random() < 0.18:
            return self.rng.choice(known)
        handle = {"wechat_mp": "oDemo", "wecom_kf": "wmDemo", "wecom_app": "wmStaffDemo", "email": "",
                  "webchat": "v-demo-"}[kind] + f"{len(known) + 1:05d}"
        if kind == "email":
            handle = f"customer{len(known) + 1:03d}@example.com"
        known.append(handle)
        return handle

    def order(self) -> str:
        return f"2026{next(self.order_seq):010d}"

    async def say(self, kind: str, handle: str, text: str, *, thread: str | None = None,
                  subject: str = "") -> intake.Outcome:
        """One customer message, recorded as the callback that carried it, through the intake flow."""
        account = self.accounts[kind]
        n = next(self.msg_ids)
        now = utcnow()
        await InboundEvent.create(channel_account=account, dedupe_key=f"demo:{account.key}:{n}",
                                  payload="{}", status="done", attempts=1, processed_at=now)
        inbound = InboundMessage(channel=kind, channel_account_id=account.id, sender_kind=IDENTITY_KIND[kind],
                                 sender_id=handle, msg_type="text", provider_msg_id=f"demo-{n}", created_at=now,
                                 text=text, subject=subject, thread_number=thread)
        self.summary.messages += 1
        out = await intake.receive(inbound=inbound, account=account)
        if out.created_ticket and out.ticket is not None:  # however it came about: agents take it on
            self.summary.tickets += 1
            self.work(out.ticket.id, kind=kind, handle=handle)
        return out

    async def lost_callback(self, kind: str) -> None:
        """A callback that could not be processed (the reception figure's failures)."""
        account = self.accounts[kind]
        n = next(self.msg_ids)
        await InboundEvent.create(channel_account=account, dedupe_key=f"demo:{account.key}:{n}", payload="{}",
                                  status="failed", attempts=5, error=self.rng.choice(FAILED_CALLBACKS))
        self.summary.failed_callbacks += 1

    # ---- one conversation from start to end ---------------------------------------------------------------------

    def begin(self, when: datetime) -> None:
        way = self.rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
        self.summary.conversations += 1
        if way in ("sidebar", "api"):
            self.at(when, lambda: self.staff_raised(way))
        elif way == "wecom_kf":
            self.at(when, self.kf_conversation)
        elif way == "email":
            self.at(when, self.email_conversation)
        else:
            self.at(when, lambda: self.chat_conversation(way))
        if self.rng.random() < 0.04:
            self.at(when + timedelta(seconds=7), lambda: self.lost_callback("wechat_mp" if way != "wecom_kf"
                                                                              else "wecom_kf"))

    async def chat_conversation(self, kind: str) -> None:
        """公众号 / web chat without a bot: keyword, asking for a person, a long chat, a slow chat, or nothing."""
        handle = self.customer_handle(kind)
        story = self.rng.choices(["keyword", "human", "count", "duration", "none"], weights=[46, 14, 10, 8, 22])[0]
        if story == "keyword":
            await self.say(kind, handle, self.rng.choice(KEYWORD_TEXTS).format(order=self.order()))
        elif story == "human":
            await self.say(kind, handle, self.rng.choice(["人工客服", "我要找人工", "转人工"]))
        elif story == "count":
            for text in SMALL_TALK[:4]:
                await self.say(kind, handle, text)
                self.move(utcnow() + timedelta(seconds=self.rng.randint(20, 90)))
            await self.say(kind, handle, SMALL_TALK[4])
        elif story == "duration":
            await self.say(kind, handle, "请问会员积分怎么用")
            self.move(utcnow() + timedelta(minutes=self.rng.randint(31, 50)))
            await self.say(kind, handle, "有人在吗")
        else:
            await self.say(kind, handle, self.rng.choice(["你好", "谢谢", "好的"]))

    async def kf_conversation(self) -> None:
        """微信客服 with the bot: answered, handed off (asked for a person, missed twice, angry, VIP), or an
        intake that collects the order number first."""
        kind = "wecom_kf"
        handle = self.customer_handle(kind)
        story = self.rng.choices(["answered", "human", "missed", "angry", "vip", "intake"],
                                 weights=[42, 18, 16, 6, 6, 12])[0]
        if story == "answered":
            await self.say(kind, handle, self.rng.choice(BOT_ANSWERABLE))
        elif story == "human":
            await self.say(kind, handle, self.rng.choice(["转人工", "人工", "我要人工客服"]))
        elif story == "missed":
            first, second = self.rng.choice(BOT_MISSES)
            out = await self.say(kind, handle, first)
            if out.ticket is None:
                self.move(utcnow() + timedelta(seconds=self.rng.randint(30, 120)))
                out = await self.say(kind, handle, second)
            if out.ticket is None:
                self.move(utcnow() + timedelta(seconds=40))
                out = await self.say(kind, handle, "人工")  # what the menu's tail asks for
        elif story == "angry":
            await self.say(kind, handle, self.rng.choice(["你们这什么垃圾服务", "太气人了，你们怎么回事！"]))
        elif story == "vip":
            customer = await customers.resolve_identity(kind=IDENTITY_KIND[kind], scope=self.accounts[kind].key,
                                                        value=handle)
            await Customer.filter(id=customer.id).update(vip_level=self.rng.choice([1, 2]))
            await self.say(kind, handle, self.rng.choice(BOT_ANSWERABLE))
        else:
            await self.say(kind, handle, "我要退款")
            self.move(utcnow() + timedelta(seconds=self.rng.randint(30, 90)))
            await self.say(kind, handle, f"{self.order()}")

    async def email_conversation(self) -> None:
        """A mail: every mail is a ticket."""
        kind = "email"
        handle = self.customer_handle(kind)
        subject = self.rng.choice(EMAIL_SUBJECTS).format(order=self.order())
        await self.say(kind, handle, f"您好：\n\n{subject}，请尽快处理。\n\n谢谢", thread="", subject=subject)

    async def staff_raised(self, way: str) -> None:
        """企业微信: an agent raises a ticket for the contact in the chat sidebar; or a back-office system (API)."""
        staff = self.rng.choice(self.sidebar_staff)
        handle = self.customer_handle("wecom_app")
        customer = await customers.resolve_identity(kind="external_userid", value=handle,
                                                    name=self.rng.choice(FAMILY) + self.rng.choice(["先生", "女士"]))
        text = self.rng.choice(KEYWORD_TEXTS).format(order=self.order())
        actor = SYSTEM_API if way == "api" else self.actors[staff.id]
        ticket = await intake.staff_ticket(actor=actor, customer=customer, subject=text[:40], description=text,
                                           source="sidebar" if way == "sidebar" else "api",
                                           assign_to_self=way == "sidebar")
        self.summary.tickets += 1
        self.work(ticket.id, kind=None, handle=None)

    # ---- the agents' side -------------------------------------------------------------------------------------

    def minutes(self, median: float, spread: float = 0.9) -> timedelta:
        """A log-normal delay around `median` minutes (most quick, a long tail)."""
        return timedelta(minutes=max(1.0, self.rng.lognormvariate(0, spread) * median))

    def work(self, ticket_id: int, *, kind: str | None, handle: str | None) -> None:
        """Schedule the ticket's life: first reply, maybe a question and the answer, resolution, survey."""
        now = utcnow()
        slow = self.rng.random() < 0.12  # the tickets that breach
        first = self.minutes(25 if not slow else 400)
        self.at(now + first, lambda: self.reply(ticket_id, kind=kind, handle=handle, round_=0, slow=slow))

    async def _agent(self, ticket: Ticket) -> tuple[Ticket, Actor]:
        """The ticket's assignee (an agent takes it from the queue when nobody has)."""
        if ticket.assignee_id is None:  # type: ignore[attr-defined]
            members = self.groups.get(ticket.group_id or 0) or [s for ss in self.groups.values()  # type: ignore[attr-defined]
                                                                for s in ss]
            staff = self.rng.choice(members)
            ticket = await tickets.update(actor=self.actors[staff.id], ticket_id=ticket.id,
                                          expected_version=ticket.version, changes={"assignee_id": staff.id,
                                                                                    "reason": "领取工单"})
        return ticket, self.actors[ticket.assignee_id]  # type: ignore[attr-defined]

    async def reply(self, ticket_id: int, *, kind: str | None, handle: str | None, round_: int, slow: bool) -> None:
        ticket = await Ticket.get(id=ticket_id)
        if ticket.status not in ("new", "open", "pending"):
            return
        ticket, actor = await self._agent(ticket)
        ask_back = round_ == 0 and kind is not None and self.rng.random() < 0.35
        await tickets.reply(actor=actor, ticket_id=ticket_id, text=self.rng.choice(REPLIES),
                            status="pending" if ask_back else None)
        self.summary.replies += 1
        now = utcnow()
        if ask_back and kind is not None and handle is not None:
            answer = self.rng.choice(FOLLOW_UPS).format(order=self.order())
            self.at(now + self.minutes(40), lambda: self.customer_writes(ticket_id, kind, handle, answer))
            self.at(now + self.minutes(90) + timedelta(minutes=60),
                    lambda: self.reply(ticket_id, kind=kind, handle=handle, round_=1, slow=slow))
        else:
            self.at(now + self.minutes(180 if not slow else 1500, 1.1),
                    lambda: self.resolve(ticket_id, kind=kind, handle=handle))

    async def customer_writes(self, ticket_id: int, kind: str, handle: str, text: str) -> None:
        ticket = await Ticket.get(id=ticket_id)
        if ticket.status in ("closed", "merged"):
            return
        await self.say(kind, handle, text, thread=ticket.number if kind == "email" else None)

    async def resolve(self, ticket_id: int, *, kind: str | None, handle: str | None) -> None:
        ticket = await Ticket.get(id=ticket_id)
        if ticket.status not in ("new", "open", "pending"):
            return
        ticket, actor = await self._agent(ticket)
        await tickets.reply(actor=actor, ticket_id=ticket_id, text=self.rng.choice(RESOLVE_TEXTS),
                            status=states.Status.RESOLVED.value)
        self.summary.resolved += 1
        now = utcnow()
        roll = self.rng.random()
        if kind is not None and handle is not None and roll < 0.08:
            text = self.rng.choice(REOPEN_TEXTS)
            self.summary.reopened += 1
            self.at(now + self.minutes(300), lambda: self.customer_writes(ticket_id, kind, handle, text))
            self.at(now + self.minutes(300) + timedelta(hours=3),
                    lambda: self.reply(ticket_id, kind=kind, handle=handle, round_=1, slow=False))
        elif kind is not None and handle is not None and kind != "email" and roll < 0.62:
            score = self.score()
            self.at(now + self.minutes(20), lambda: self.survey(ticket_id, kind, handle, score))
        elif roll < 0.75:
            score = self.score()
            self.at(now + self.minutes(120), lambda: self.rate_on_page(ticket_id, score))

    def score(self) -> int:
        return self.rng.choices([5, 4, 3, 2, 1], weights=[52, 25, 10, 7, 6])[0]

    async def survey(self, ticket_id: int, kind: str, handle: str, score: int) -> None:
        """The customer answers the resolved notice with 1 and the rating question with a score."""
        ticket = await Ticket.get(id=ticket_id)
        if ticket.status != "resolved":
            return
        await self.say(kind, handle, "1")
        self.move(utcnow() + timedelta(seconds=self.rng.randint(10, 60)))
        before = await ratings.current_rating(ticket_id=ticket_id)
        await self.say(kind, handle, str(score))
        if await ratings.current_rating(ticket_id=ticket_id) != before:
            self.summary.ratings += 1
            self.move(utcnow() + timedelta(seconds=30))
            await self.say(kind, handle, "无")

    async def rate_on_page(self, ticket_id: int, score: int) -> None:
        """The customer rates on the H5 ticket page."""
        await ratings.record_rating(ticket_id=ticket_id, score=score, channel="h5", source="h5_page")
        self.summary.ratings += 1


#: the back-office system that files API tickets
SYSTEM_API = Actor(kind="system", group_ids=None, role="admin", can_reveal=False, name="订单系统")


def local_hour(dt: datetime) -> int:
    return dt.astimezone(CHINA).hour


async def _accounts() -> dict[str, ChannelAccount]:
    out: dict[str, ChannelAccount] = {}
    for kind, key, name, config in DEMO_ACCOUNTS:
        account, _ = await ChannelAccount.get_or_create(key=key, defaults={"kind": kind, "name": name,
                                                                             "config": config, "active": False})
        out[kind] = account
    return out


async def seed_month(*, days: int = 30, end: datetime | None = None, seed: int = 20261204,
                     per_day: float = 6.0) -> MonthSummary:
    """Write `days` days of traffic ending at `end` (default: now) through the real flows; the caller runs it once
    (app.seed does, when the desk has no tickets yet). Needs the demo organisation and workflow (app.seed)."""
    rng = random.Random(seed)
    end = (end or utcnow()).astimezone(UTC)
    first_day = (end.astimezone(CHINA).date() - timedelta(days=days - 1))
    start = datetime.combine(first_day, time(0, 0), tzinfo=CHINA).astimezone(UTC)
    accounts = await _accounts()
    groups: dict[int, list[Staff]] = {}
    for group in await SkillGroup.all().prefetch_related("members"):
        groups[group.id] = [m for m in group.members if m.status == "active" and m.role != "admin"]
    staff = await Staff.filter(status="active")
    actors = {s.id: await actor_for(s) for s in staff}
    sidebar_staff = [s for s in staff if s.role == "agent"] or list(staff)
    with demo_clock(start) as move:
        month = _Month(rng=rng, start=start, end=end, move=move, accounts=accounts, groups=groups, actors=actors,
                       sidebar_staff=sidebar_staff)
        for day in range(days):
            today: date = first_day + timedelta(days=day)
            weekend = today.isoweekday() >= 6
            count = max(0, round(rng.gauss(per_day * (0.55 if weekend else 1.0), per_day * 0.2)))
            for _ in range(count):
                hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
                when = datetime.combine(today, time(hour, rng.randint(0, 59), rng.randint(0, 59)),
                                        tzinfo=CHINA).astimezone(UTC)
                month.begin(when)
        await month.run()
    return month.summary
