"""The bot, channel-neutral: answers from the knowledge base, offers choices when unsure, collects the details a
ticket needs one question at a time, hands off to people with the whole transcript, and asks afterwards whether the
problem was solved and how we did.

It runs inside `app.conversations.service.ingest`, in the message's transaction, before the conversion rules:
`on_message` returns None when the bot stays out (a person is on the case, the channel has no bot, a message the
bot cannot read), and the rules decide as before. Everything it says goes out as outbox rows written in that same
transaction, each recorded as a bot message in the conversation, so the hand-off ticket carries the transcript.
Channel rules stay with the adapters: kf sends `msgmenu` for choices, the Official Account gets the same choices as
numbered text inside its 48-hour customer-service window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.channels.base import IDENTITY_KIND, InboundMessage
from app.channels.models import ChannelAccount
from app.conversations.config import load_rules
from app.conversations.extract import extract
from app.conversations.models import Conversation, Message
from app.customers.models import Customer, CustomerIdentity
from app.db import dialect_sql
from app.kb import calibration, sentiment
from app.kb import service as kb
from app.kb.config import BotConfig
from app.kb.models import Article, BotSession, Survey
from app.logs import get_logger
from app.outbox import service as outbox
from app.security.crypto import decrypt_field, encrypt_field, normalize_phone
from app.tickets import states
from app.tickets.models import Ticket, TicketEvent
from app.timeutil import utcnow

log = get_logger(__name__)

#: words that ask for a person (besides the conversion rules' human_request list)
HUMAN_WORDS = ("人工", "转人工", "客服", "真人")
#: problem types whose tickets need details before a person can act, and the details in asking order
INTAKE_FIELDS: dict[str, tuple[str, ...]] = {"退款": ("order_no",), "报修": ("address", "phone")}
PROMPTS = {
    "order_no": "为了给您办理退款，请发送您的订单号（8-32 位数字或字母）。",
    "address": "请告诉我们需要上门维修的详细地址（例如：广东省深圳市南山区科技园路 1 号 2 栋 301）。",
    "phone": "请留下方便联系您的手机号码。",
}
RETRY_PROMPTS = {
    "order_no": "订单号格式不对，请发送 8-32 位数字或字母组成的订单号。",
    "address": "地址好像不完整，请写明省市区、街道和门牌号。",
    "phone": "手机号格式不对，请发送 11 位手机号码。",
}
FIELD_LABELS = {"order_no": "订单号", "address": "地址", "phone": "联系电话"}
MAX_INVALID = 3
HANDOFF_TEXT = "正在为您转接人工客服，请稍候。之前的对话客服都能看到，不需要重复描述。"
NO_MATCH_TEXT = "抱歉，我没有找到相关答案。请换个说法描述您的问题，或回复“人工”联系客服。"
ANSWER_TAIL = "问题解决了吗？回复“解决了”或“没解决”；还有其他问题请直接回复，需要人工请回复“人工”。"
SOLVED_TEXT = "很高兴帮到您！还有其他问题可以随时问我。"
#: a customer's word on the bot's last answer (the calibration's labels): solved, or not
SOLVED_WORDS = ("解决了", "已解决", "好了", "可以了", "明白了", "懂了", "谢谢")
NOT_SOLVED_WORDS = ("没解决", "未解决", "没有解决", "不对", "答非所问", "没用", "不是这个")
MENU_HEAD = "您想问的是下面哪个问题？"
MENU_TAIL = "都不是？请回复“人工”。"
SURVEY_RATING = "请为本次服务打分：回复 1-5（5 分为非常满意）。"
SURVEY_COMMENT = "感谢打分！还有什么意见或建议吗？直接回复即可，回复“无”结束。"
SURVEY_THANKS = "感谢您的评价，祝您生活愉快！"
_ADDRESS_HINT = re.compile(r"[省市区县镇乡村路街道巷号栋楼室弄]")
_ORDER = re.compile(r"^[0-9A-Za-z]{8,32}$")
_QUESTION = re.compile(r"[?？]|多久|怎么|怎样|如何|什么时候|吗$|能不能|可以.*吗|需要.*吗|几天")


@dataclass
class BotOutcome:
    """What the bot did with one message; on "handoff" the intake flow opens the ticket with `fields`."""

    action: str
    ticket: Ticket | None = None
    created_ticket: bool = False
    #: why the bot handed off (human_request, bot_failed, angry, vip, intake_complete, intake_failed)
    reason: str = ""
    #: what the bot collected for the ticket: category, order_no, phone (clear), address
    fields: dict[str, str] = field(default_factory=dict)
    #: the bot's attempts before the hand-off (questions, menus, answers)
    attempts: list[dict[str, Any]] = field(default_factory=list)


def bot_enabled(account: ChannelAccount, cfg: BotConfig) -> bool:
    """An account's own {"bot": true|false} wins over the BOT_CHANNELS default."""
    own = (account.config or {}).get("bot")
    return bool(own) if own is not None else account.kind in cfg.channels


# ---- entry point -----------------------------------------------------------------------------------------------


async def on_message(*, inbound: InboundMessage, account: ChannelAccount, customer: Customer, conv: Conversation,
                     message: Message, tickets: list[Ticket], surveyed: bool = True) -> BotOutcome | None:
    """Answer, ask, or hand off; None leaves the message to the conversion rules. `tickets` are the customer's
    live and resolved tickets (the intake flow read them already); ``surveyed=False``: the customer cannot have a
    survey waiting (created for this message), so none is read."""
    cfg = await calibration.bot_config()
    text = inbound.text.strip()
    survey = await _pending_survey(customer_id=customer.id) if inbound.msg_type == "text" and surveyed else None
    if survey is not None:
        done = await _survey_answer(survey=survey, text=text, menu_id=str(inbound.data.get("menu_id") or ""),
                                    account=account, customer=customer, conv=conv, message=message)
        if done is not None:
            return done
    if tickets:
        # a person is on the case, or a reply to the resolved notice (1 closes, 2 reopens): the ticket's business
        return None
    if not bot_enabled(account, cfg) or inbound.msg_type != "text" or not text:
        return None
    session, _ = await BotSession.get_or_create(customer_id=customer.id, channel_account_id=account.id)
    if session.mode == "human":
        # the person's ticket is finished (no live ticket above): the bot takes the conversation back
        session.mode, session.failures, session.menu, session.attempts = "bot", 0, [], []
    bot = _Turn(cfg=cfg, account=account, customer=customer, conv=conv, message=message, session=session)
    try:
        return await bot.run(text=text, menu_id=str(inbound.data.get("menu_id") or ""))
    finally:
        await session.save()


class _Turn:
    """One customer message handled by the bot."""

    def __init__(self, *, cfg: BotConfig, account: ChannelAccount, customer: Customer, conv: Conversation,
                 message: Message, session: BotSession) -> None:
        self.cfg = cfg
        self.account = account
        self.customer = customer
        self.conv = conv
        self.message = message
        self.session = session
        self.sent = 0

    async def run(self, *, text: str, menu_id: str) -> BotOutcome:
        feedback = await self._feedback(text)
        if feedback is not None:
            return feedback
        choice = self._menu_choice(text, menu_id)
        if choice == "handoff":
            return await self.handoff("human_request")
        if choice is not None:
            return await self._answer_choice(choice)
        if self.session.mode == "collecting":
            return await self._collect(text)
        reason = self._handoff_reason(text)
        if reason is not None:
            return await self.handoff(reason)
        # refunds and repairs need details whatever the mood ("空调坏了" reads as a complaint); ask for them first,
        # unless it is a question the knowledge base answers ("退款多久能到账？" needs no order number)
        category = extract(text, load_rules()).category
        if category in INTAKE_FIELDS:
            if is_question(text):
                answered = await self._sure_answer(text)
                if answered is not None:
                    return answered
            return await self._start_intake(category, text)
        if sentiment.is_angry(text):
            return await self.handoff("angry")
        return await self._search(text)

    async def _feedback(self, text: str) -> BotOutcome | None:
        """解决了 / 没解决 right after an answer: the answer's verdict (calibration reads it); not solved hands off."""
        last = (self.session.attempts or [{}])[-1]
        if last.get("outcome") not in ("answered", "chosen") or len(text) > 12:
            return None
        negative = any(w in text for w in NOT_SOLVED_WORDS)
        if not negative and not any(w in text for w in SOLVED_WORDS):
            return None
        await kb.record_verdict(customer_id=self.customer.id, article_id=last.get("article_id"),
                                right=not negative)
        self.session.attempts = [*self.session.attempts, {"q": text, "outcome": "not_solved" if negative
                                                          else "solved"}]
        if negative:
            return await self.handoff("not_solved")
        await self.say({"type": "text", "text": SOLVED_TEXT})
        return BotOutcome(action="solved")

    # ---- decisions --------------------------------------------------------------------------------------------

    def _handoff_reason(self, text: str) -> str | None:
        rules = load_rules()
        if any(w in text for w in (*rules.human_request, *HUMAN_WORDS)):
            return "human_request"
        if self.customer.vip_level >= self.cfg.vip_level > 0:
            return "vip"
        return None

    def _menu_choice(self, text: str, menu_id: str) -> str | None:
        ids = [str(c.get("id")) for c in self.session.menu or []]
        if menu_id and menu_id in ids:
            return menu_id
        if text.isdigit() and ids and 1 <= int(text) <= len(ids):
            return ids[int(text) - 1]
        return None

    async def _sure_answer(self, text: str, results: list[Any] | None = None) -> BotOutcome | None:
        """Answer from the knowledge base when the best article is clearly right; None otherwise (nothing said)."""
        if results is None:
            results = await kb.search(query=text, k=self.cfg.menu_size)
        best = results[0] if results else None
        runner_up = results[1].score if len(results) > 1 else 0.0
        if best is not None and self.cfg.decide(best=best.score, runner_up=runner_up, fused=best.fused) == "answer":
            await self._log(text, best.article.id, best.score, "answered", runner_up=runner_up, fused=best.fused)
            self.session.failures = 0
            self.session.menu = []
            return await self._answer_article(best.article, question=text, outcome="answered")
        return None

    async def _search(self, text: str) -> BotOutcome:
        results = await kb.search(query=text, k=self.cfg.menu_size)
        answered = await self._sure_answer(text, results)
        if answered is not None:
            return answered
        best = results[0] if results else None
        if best is not None and self.cfg.decide(best=best.score, runner_up=best.score, fused=best.fused) != "none":
            await self._log(text, best.article.id, best.score, "menu",
                            runner_up=results[1].score if len(results) > 1 else 0.0, fused=best.fused)
            choices = [{"id": f"kb:{r.article.id}", "content": r.article.title[:60]} for r in results]
            self.session.menu = [*choices, {"id": "handoff", "content": "以上都不是，转人工"}]
            self.session.attempts = [*self.session.attempts, {"q": text, "outcome": "menu",
                                                              "choices": [c["content"] for c in choices]}]
            await self.say({"type": "menu", "head": MENU_HEAD, "choices": self.session.menu, "tail": MENU_TAIL,
                            "text": _menu_text(MENU_HEAD, self.session.menu, MENU_TAIL)})
            return BotOutcome(action="menu")
        await self._log(text, best.article.id if best else None, best.score if best else 0.0, "no_match",
                        runner_up=results[1].score if len(results) > 1 else 0.0, fused=bool(best and best.fused))
        self.session.failures += 1
        self.session.attempts = [*self.session.attempts, {"q": text, "outcome": "no_match"}]
        if self.session.failures >= self.cfg.max_failures:
            return await self.handoff("bot_failed")
        await self.say({"type": "text", "text": NO_MATCH_TEXT})
        return BotOutcome(action="no_match")

    async def _answer_choice(self, choice: str) -> BotOutcome:
        article_id = int(choice.split(":", 1)[1]) if choice.startswith("kb:") else 0
        article = await Article.get_or_none(id=article_id, status="published")
        self.session.menu = []
        if article is None:
            return await self._search(self.message.text)
        await kb.label_menu_choice(customer_id=self.customer.id, article_id=article_id)
        await self._log(self.message.text, article_id, 1.0, "chosen")
        self.session.failures = 0
        return await self._answer_article(article, question=article.title, outcome="chosen")

    async def _answer_article(self, article: Any, *, question: str, outcome: str) -> BotOutcome:
        self.session.attempts = [*self.session.attempts, {"q": question, "outcome": outcome,
                                                          "article_id": article.id, "title": article.title}]
        await self.say({"type": "text", "text": f"{article.body.strip()}\n\n{ANSWER_TAIL}", "article_id": article.id})
        return BotOutcome(action=outcome)

    # ---- conversational ticket creation ---------------------------------------------------------------------------

    async def _start_intake(self, category: str, text: str) -> BotOutcome:
        found = extract(text, load_rules())
        fields: dict[str, str] = {}
        if found.order_no:
            fields["order_no"] = found.order_no
        if found.phone:
            fields["phone"] = encrypt_field(found.phone)
        self.session.intake = {"category": category, "fields": fields, "invalid": 0}
        self.session.mode = "collecting"
        return await self._next_question()

    async def _next_question(self) -> BotOutcome:
        intake = self.session.intake
        missing = [f for f in INTAKE_FIELDS[intake["category"]] if f not in intake["fields"]]
        if not missing:
            return await self.file_ticket()
        self.session.intake = {**intake, "asking": missing[0]}
        await self.say({"type": "text", "text": PROMPTS[missing[0]]})
        return BotOutcome(action="ask")

    async def _collect(self, text: str) -> BotOutcome:
        if any(w in text for w in HUMAN_WORDS) or sentiment.is_angry(text):
            return await self.handoff("human_request" if any(w in text for w in HUMAN_WORDS) else "angry")
        intake = dict(self.session.intake)
        asking = str(intake.get("asking", ""))
        value = validate(asking, text)
        if value is None:
            intake["invalid"] = int(intake.get("invalid", 0)) + 1
            self.session.intake = intake
            if intake["invalid"] >= MAX_INVALID:
                return await self.handoff("intake_failed")
            await self.say({"type": "text", "text": RETRY_PROMPTS[asking]})
            return BotOutcome(action="ask")
        stored = encrypt_field(value) if asking == "phone" else value
        self.session.intake = {**intake, "fields": {**intake["fields"], asking: stored}, "invalid": 0}
        return await self._next_question()

    async def file_ticket(self) -> BotOutcome:
        """File the ticket with every detail collected, then let a person take over."""
        return await self.handoff("intake_complete")

    # ---- hand-off --------------------------------------------------------------------------------------------

    async def handoff(self, reason: str) -> BotOutcome:
        """Hand the customer to people: say so, and give the intake flow what the bot collected."""
        intake = dict(self.session.intake or {})
        collected = dict(intake.get("fields") or {})
        fields: dict[str, str] = {}
        if intake.get("category"):
            fields["category"] = str(intake["category"])
        for key in ("order_no", "address"):
            if collected.get(key):
                fields[key] = str(collected[key])
        if collected.get("phone"):
            fields["phone"] = decrypt_field(collected["phone"])
        if reason != "intake_complete":
            await self.say({"type": "text", "text": HANDOFF_TEXT})
        attempts = list(self.session.attempts or [])
        self.session.mode, self.session.menu, self.session.intake = "human", [], {}
        self.session.failures = 0
        return BotOutcome(action="handoff", reason=reason, fields=fields, attempts=attempts)

    # ---- saying things ---------------------------------------------------------------------------------------

    async def say(self, payload: dict[str, Any], *, deliver: bool = True) -> None:
        """Send one bot message (outbox row + transcript entry; only the transcript entry when not delivering)."""
        self.sent += 1
        await send(account=self.account, customer=self.customer, conv=self.conv, payload=payload,
                   dedupe_key=f"bot:{self.message.id}:{self.sent}", deliver=deliver)

    async def _log(self, text: str, article_id: int | None, score: float, outcome: str, *, runner_up: float = 0.0,
                   fused: bool = False) -> None:
        await kb.record_query(channel=self.account.kind, customer_id=self.customer.id, text=text,
                              best_article_id=article_id, score=score, outcome=outcome, runner_up=runner_up,
                              fused=fused)


def validate(field: str, text: str) -> str | None:
    """The cleaned value of an intake answer, or None when it does not look right."""
    text = text.strip()
    if field == "order_no":
        found = extract(text, load_rules()).order_no
        candidate = found or re.sub(r"^(订单号?|单号)[:：\s]*", "", text)
        return candidate if _ORDER.match(candidate) else None
    if field == "phone":
        return normalize_phone(text)
    if field == "address":
        return text[:200] if len(text) >= 6 and _ADDRESS_HINT.search(text) else None
    return None


def _menu_text(head: str, choices: list[dict[str, Any]], tail: str) -> str:
    lines = [head, *(f"{i}. {c['content']}" for i, c in enumerate(choices, 1)), f"请回复序号。{tail}"]
    return "\n".join(lines)


async def _identity(account: ChannelAccount, customer: Customer) -> str | None:
    identity = await CustomerIdentity.filter(customer_id=customer.id, kind=IDENTITY_KIND.get(account.kind, ""),
                                             scope=account.key).first()
    return identity.value if identity is not None else None


async def send(*, account: ChannelAccount, customer: Customer, conv: Conversation | None, payload: dict[str, Any],
               dedupe_key: str, ticket_id: int | None = None, deliver: bool = True) -> None:
    """Write a bot message to the customer: a transcript row and the outbox row that carries it."""
    recipient = await _identity(account, customer)
    if recipient is None:
        return
    payload = {**payload, "author": "bot"}
    message = await Message.create(conversation_id=conv.id if conv else None, ticket_id=ticket_id,
                                   customer_id=customer.id, direction="out", author_kind="bot",
                                   channel_account_id=account.id, msg_type="text", text=str(payload.get("text", "")),
                                   data={k: v for k, v in payload.items() if k != "text"})
    if not deliver:
        return
    row = await outbox.create(channel=account.kind, kind="customer_message", recipient=recipient, payload=payload,
                              channel_account_id=account.id, ticket_id=ticket_id, dedupe_key=dedupe_key)
    await Message.filter(id=message.id).update(outbox_id=row.id)


async def record_handoff(*, ticket: Ticket, outcome: BotOutcome, customer: Customer,
                         account: ChannelAccount | None, text: str) -> None:
    """After the intake flow opened the hand-off ticket: the bot's transcript and attempts go with it."""
    await TicketEvent.create(ticket_id=ticket.id, kind="bot_handoff", actor_kind="bot", reason=outcome.reason,
                             data={"attempts": outcome.attempts, "intake": sorted(outcome.fields),
                                   "category": outcome.fields.get("category", "")})
    await kb.record_query(channel=account.kind if account else "", customer_id=customer.id, text=text,
                          best_article_id=None, score=0.0, outcome="handoff")
    log.info("bot.handoff", ticket_id=ticket.id, reason=outcome.reason)


def is_question(text: str) -> bool:
    """A how-to or when question rather than a request ("退款多久能到账？", "怎么申请退款")."""
    return bool(_QUESTION.search(text))


# ---- after resolution: was it solved, and how did we do -------------------------------------------------------


#: every customer text asks this, and nearly always there is none: one column through SQL written once
#: (`app.db.dialect_sql`; tortoise's query building cost more CPU than the round trip), the row only when there is one
_PENDING_SURVEY = ("SELECT {q}id{q} FROM {q}kb_survey{q} WHERE {q}customer_id{q}={m} AND {q}state{q} IN "
                   "('asked_rating','asked_comment') ORDER BY {q}id{q} DESC LIMIT 1")


async def _pending_survey(*, customer_id: int) -> Survey | None:
    conn: Any = Survey._meta.db
    rows = await conn.execute_query_dict(dialect_sql(_PENDING_SURVEY, conn.capabilities.dialect), [customer_id])
    return await Survey.get_or_none(id=rows[0]["id"]) if rows else None


async def solved_hook(ticket: Ticket, message: Message) -> bool:
    """A reply hook of app.tickets.closing: a 1/2 to the resolved notice is recorded as the survey's first
    answer (solved or not), and a 1 is followed by the rating question. Never consumes the reply: closing still
    closes (1) or reopens (2) the ticket."""
    if ticket.status != states.Status.RESOLVED or message.direction != "in":
        return False
    text = (message.text or "").strip()
    solved = True if text in ("1", "１") else False if text in ("2", "２") else None
    if solved is None or await Survey.exists(ticket_id=ticket.id, resolution=ticket.version):
        return False
    customer = await Customer.get(id=ticket.customer_id)  # type: ignore[attr-defined]
    await Survey.filter(customer_id=customer.id, state__in=["asked_solved", "asked_rating", "asked_comment"]
                        ).update(state="expired")
    await Survey.create(ticket=ticket, customer_id=customer.id, resolution=ticket.version, solved=solved,
                        staff_id=ticket.assignee_id, answered_at=utcnow(),  # type: ignore[attr-defined]
                        state="asked_rating" if solved else "done")
    await TicketEvent.create(ticket_id=ticket.id, kind="survey", actor_kind="customer",
                             data={"solved": solved, "staff_id": ticket.assignee_id})  # type: ignore[attr-defined]
    account_id = ticket.channel_account_id  # type: ignore[attr-defined]
    account = await ChannelAccount.get_or_none(id=account_id) if account_id else None
    if solved and account is not None:
        conv_id = ticket.conversation_id  # type: ignore[attr-defined]
        conv = await Conversation.get_or_none(id=conv_id) if conv_id else None
        await send(account=account, customer=customer, conv=conv, ticket_id=ticket.id,
                   payload={"type": "text", "text": SURVEY_RATING}, dedupe_key=f"survey:{ticket.id}:{ticket.version}")
    return False


_NONE = ("无", "没有", "没了", "不用", "no", "无意见")


async def _survey_answer(*, survey: Survey, text: str, menu_id: str, account: ChannelAccount, customer: Customer,
                         conv: Conversation, message: Message) -> BotOutcome | None:
    """Record one survey answer; None when the message is not an answer (the survey lapses)."""
    ticket = await Ticket.get(id=survey.ticket_id)  # type: ignore[attr-defined]
    reply: str | None = None
    if survey.state == "asked_rating":
        digits = re.sub(r"\s*分$", "", text)
        if digits.isdigit() and 1 <= int(digits) <= 5:
            survey.rating, survey.state, reply = int(digits), "asked_comment", SURVEY_COMMENT
    elif survey.state == "asked_comment":
        if text.lower() not in _NONE:
            survey.comment = text[:500]
        survey.state, reply = "done", SURVEY_THANKS
    if reply is None:
        survey.state = "expired"
        await survey.save()
        return None
    survey.answered_at = utcnow()
    await survey.save()
    await Message.filter(id=message.id).update(ticket_id=ticket.id)
    if survey.rating is not None and (survey.state == "asked_comment" or survey.comment):
        # the ticket's one rating (app.tickets.ratings): the score at once, its comment joins it in place
        from app.tickets import ratings

        await ratings.record_rating(ticket_id=ticket.id, score=survey.rating, comment=survey.comment,
                                    channel=account.kind, source="bot_survey",
                                    staff_id=survey.staff_id, ref=f"survey:{survey.id}")  # type: ignore[attr-defined]
    if survey.state == "done":
        await TicketEvent.create(ticket_id=ticket.id, kind="survey", actor_kind="customer",
                                 data={"solved": survey.solved, "rating": survey.rating, "comment": survey.comment,
                                       "staff_id": survey.staff_id})  # type: ignore[attr-defined]
    await send(account=account, customer=customer, conv=conv, ticket_id=ticket.id,
               payload={"type": "text", "text": reply}, dedupe_key=f"survey-reply:{message.id}")
    return BotOutcome(action="survey", ticket=ticket)

