"""Repair tools (the seed's 消息丢失的补偿获取): find outbox messages and stored callbacks that failed, and replay them.

A replay puts the *same* row back in the queue (the conditional update from a failed status to ``pending`` is the
guard): a second click while it waits finds nothing to change and does nothing, a delivered message or a processed
callback is refused, and the deliver/process jobs' claims keep two jobs from acting twice. So a replayed message is
delivered once (kf sends carry the outbox id as ``msgid``; WeCom app messages use the duplicate check). Every
replay is an audit row. What is listed is safe to show: payloads stay encrypted, errors are shown masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from app.channels.models import ChannelAccount, InboundEvent
from app.channels.wecom_kf.models import KfCursor
from app.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from app.labels import CHANNEL_LABELS
from app.logs import get_logger
from app.outbox.models import OutboxMessage
from app.queue import enqueue
from app.security.pii import mask_text
from app.security.scope import Actor
from app.security.service import record_audit
from app.tickets.models import TicketEvent
from app.timeutil import utcnow
from app.uow import atomic, on_commit

log = get_logger(__name__)

#: outbox statuses a person may replay: a permanent failure, attempts exhausted, an outcome nobody knows
OUTBOX_REPLAYABLE = ("failed", "dead", "unknown")
OUTBOX_STATUSES = ("pending", "sending", "sent", *OUTBOX_REPLAYABLE)
#: stored callbacks a person may replay: processing failed MAX_ATTEMPTS times
INBOUND_REPLAYABLE = ("failed",)
INBOUND_STATUSES = ("pending", "processing", "done", "ignored", *INBOUND_REPLAYABLE)
OUTBOX_STATUS_LABELS = {"pending": "等待发送", "sending": "发送中", "sent": "已送达", "failed": "发送失败",
                        "dead": "重试耗尽", "unknown": "结果未知"}
INBOUND_STATUS_LABELS = {"pending": "等待处理", "processing": "处理中", "done": "已处理", "ignored": "已忽略",
                         "failed": "处理失败"}
#: what an outbox row is, for people
KIND_LABELS = {"customer_message": "客户消息", "template_message": "模板消息", "staff_card": "员工通知",
               "webhook_event": "事件推送", "verify_code": "验证码", "kf_session": "客服会话", "kf_welcome": "欢迎语",
               "oa_apply": "审批申请"}
#: ids one bulk replay may name
MAX_BULK = 200
MAX_PAGE = 200


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("只有管理员可以使用修复工具", code="admin_only")


@dataclass(frozen=True)
class Replay:
    """What one replay request did: ``replayed`` False when the row was already waiting in the queue."""

    id: int
    replayed: bool
    status: str


@dataclass
class BulkReplay:
    """A bulk replay's outcome: the rows queued again, the ones already queued, and the refused ones with why."""

    replayed: list[int] = field(default_factory=list)
    already_queued: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "already_queued": self.already_queued,
                "refused": [{"id": k, "message": v} for k, v in self.refused.items()]}


def _check_status(status: str | None, known: tuple[str, ...]) -> None:
    if status is not None and status not in known:
        raise ValidationFailed(f"状态只能是以下值之一：{'、'.join(known)}", code="invalid_status",
                               details={"fields": [{"field": "status", "message": "状态不合法"}]})


def _check_period(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since > until:
        raise ValidationFailed.for_field("since", "开始时间不能晚于结束时间", code="invalid_period")


# ---- outbox -------------------------------------------------------------------------------------------------------


async def list_outbox(*, actor: Actor, channel: str | None = None, status: str | None = None,
                      since: datetime | None = None, until: datetime | None = None, error: str | None = None,
                      before_id: int | None = None, limit: int = 50) -> list[OutboxMessage]:
    """Outbox messages that need a person (failed, dead, unknown; or one named status), newest first."""
    _require_admin(actor)
    _check_status(status, OUTBOX_STATUSES)
    _check_period(since, until)
    query = OutboxMessage.filter(status=status) if status else OutboxMessage.filter(status__in=OUTBOX_REPLAYABLE)
    if channel:
        query = query.filter(channel=channel)
    if since is not None:
        query = query.filter(created_at__gte=since)
    if until is not None:
        query = query.filter(created_at__lte=until)
    if error:
        query = query.filter(last_error__icontains=error)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(max(1, min(limit, MAX_PAGE)))


async def count_outbox(*, actor: Actor) -> dict[str, int]:
    """How many outbox messages wait for a person, per replayable status."""
    _require_admin(actor)
    return {s: await OutboxMessage.filter(status=s).count() for s in OUTBOX_REPLAYABLE}


async def replay_outbox(*, actor: Actor, outbox_id: int) -> Replay:
    """Queue a failed, dead or unknown outbox message again (the same row, once); a queued one is left alone."""
    _require_admin(actor)
    row = await OutboxMessage.get_or_none(id=outbox_id)
    if row is None:
        raise NotFound("消息不存在")
    async with atomic():
        changed = await OutboxMessage.filter(id=row.id, status__in=OUTBOX_REPLAYABLE).update(
            status="pending", attempts=0, next_attempt_at=utcnow(), lease_until=None)
        if not changed:
            current = await OutboxMessage.get(id=row.id)
            if current.status in ("pending", "sending"):
                return Replay(id=row.id, replayed=False, status=current.status)
            raise InvalidTransition("这条消息已送达，不能重放", code="already_delivered")
        entry = await record_audit(actor=actor, action="replay_outbox", object_type="outbox", object_id=str(row.id),
                                   reason=f"{OUTBOX_STATUS_LABELS.get(row.status, row.status)}，已尝试 "
                                          f"{row.attempts} 次，渠道 {row.channel}")
        ticket_id = row.ticket_id  # type: ignore[attr-defined]
        if ticket_id is not None:
            await TicketEvent.create(ticket_id=ticket_id, kind="delivery_resent", actor_kind=actor.kind,
                                     actor_id=actor.staff_id, data={"outbox_id": row.id, "replay": True})
        row_id, audit_id = row.id, entry.id

        async def _enqueue() -> None:
            # a job id of its own: the row's earlier jobs may still sit in the queue's memory of finished ids
            await enqueue("deliver_outbox", row_id, job_id=f"deliver:{row_id}:replay:{audit_id}")

        await on_commit(_enqueue)
    log.info("repair.replay_outbox", outbox_id=row.id, previous=row.status, staff_id=actor.staff_id)
    return Replay(id=row.id, replayed=True, status="pending")


async def replay_outbox_many(*, actor: Actor, ids: list[int]) -> BulkReplay:
    """Replay several outbox messages, each on its own (one audit row each); returns what happened to each."""
    return await _bulk(actor=actor, ids=ids, one=replay_outbox, key="outbox_id")


# ---- inbound callbacks ------------------------------------------------------------------------------------------


async def list_inbound(*, actor: Actor, channel: str | None = None, status: str | None = None,
                       since: datetime | None = None, until: datetime | None = None, error: str | None = None,
                       before_id: int | None = None, limit: int = 50) -> list[InboundEvent]:
    """Stored callbacks whose processing failed (or of one named status), newest first, with their account."""
    _require_admin(actor)
    _check_status(status, INBOUND_STATUSES)
    _check_period(since, until)
    query = InboundEvent.filter(status=status) if status else InboundEvent.filter(status__in=INBOUND_REPLAYABLE)
    if channel:
        # callbacks without an account (WeCom directory changes) carry their kind in the dedupe key
        query = query.filter(Q(channel_account__kind=channel)
                             | Q(channel_account_id=None, dedupe_key__startswith=f"{channel}:"))
    if since is not None:
        query = query.filter(received_at__gte=since)
    if until is not None:
        query = query.filter(received_at__lte=until)
    if error:
        query = query.filter(error__icontains=error)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(max(1, min(limit, MAX_PAGE))).select_related("channel_account")


async def count_inbound(*, actor: Actor) -> dict[str, int]:
    """How many stored callbacks wait for a person, per replayable status."""
    _require_admin(actor)
    return {s: await InboundEvent.filter(status=s).count() for s in INBOUND_REPLAYABLE}


async def replay_inbound(*, actor: Actor, event_id: int) -> Replay:
    """Process a failed callback again (the same stored row, once); a queued one is left alone."""
    _require_admin(actor)
    event = await InboundEvent.get_or_none(id=event_id)
    if event is None:
        raise NotFound("回调记录不存在")
    async with atomic():
        changed = await InboundEvent.filter(id=event.id, status__in=INBOUND_REPLAYABLE).update(
            status="pending", attempts=0, processed_at=None)
        if not changed:
            current = await InboundEvent.get(id=event.id)
            if current.status in ("pending", "processing"):
                return Replay(id=event.id, replayed=False, status=current.status)
            raise InvalidTransition("这条回调已处理完毕，不能重放", code="already_processed")
        entry = await record_audit(actor=actor, action="replay_inbound", object_type="inbound_event",
                                   object_id=str(event.id),
                                   reason=f"{INBOUND_STATUS_LABELS.get(event.status, event.status)}，已尝试 "
                                          f"{event.attempts} 次")
        event_id_, audit_id = event.id, entry.id

        async def _enqueue() -> None:
            await enqueue("process_inbound_event", event_id_, job_id=f"inbound:{event_id_}:replay:{audit_id}")

        await on_commit(_enqueue)
    log.info("repair.replay_inbound", event_id=event.id, staff_id=actor.staff_id)
    return Replay(id=event.id, replayed=True, status="pending")


async def replay_inbound_many(*, actor: Actor, ids: list[int]) -> BulkReplay:
    """Replay several failed callbacks, each on its own (one audit row each)."""
    return await _bulk(actor=actor, ids=ids, one=replay_inbound, key="event_id")


async def _bulk(*, actor: Actor, ids: list[int], one: Any, key: str) -> BulkReplay:
    _require_admin(actor)
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        raise ValidationFailed.for_field("ids", "请至少选择一条记录", code="nothing_selected")
    if len(wanted) > MAX_BULK:
        raise ValidationFailed(f"一次最多重放 {MAX_BULK} 条", code="too_many",
                               details={"fields": [{"field": "ids", "message": f"一次最多 {MAX_BULK} 条"}]})
    out = BulkReplay()
    for item in wanted:
        try:
            result: Replay = await one(actor=actor, **{key: item})
        except (NotFound, InvalidTransition) as exc:
            out.refused[item] = exc.message
            continue
        (out.replayed if result.replayed else out.already_queued).append(item)
    return out


# ---- 微信客服 recovery pull ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KfAccountState:
    """A kf account and where its message pull stands."""

    account_id: int
    open_kfid: str
    name: str
    active: bool
    pages: int
    last_pull_at: datetime | None
    pulling: bool


async def list_kf_accounts(*, actor: Actor) -> list[KfAccountState]:
    """Every kf account with its pull cursor's state (pages read, last pull, a pull running now)."""
    _require_admin(actor)
    accounts = await ChannelAccount.filter(kind="wecom_kf").order_by("id")
    cursors = {c.open_kfid: c for c in await KfCursor.filter(open_kfid__in=[a.key for a in accounts])}
    now = utcnow()
    out = []
    for account in accounts:
        cursor = cursors.get(account.key)
        out.append(KfAccountState(
            account_id=account.id, open_kfid=account.key, name=account.name, active=account.active,
            pages=cursor.pages if cursor else 0, last_pull_at=cursor.updated_at if cursor and cursor.pages else None,
            pulling=bool(cursor and cursor.lease_until and cursor.lease_until > now)))
    return out


async def request_kf_recovery(*, actor: Actor, account_id: int) -> None:
    """Queue a recovery pull of one kf account now (kf/sync_msg from its cursor) and record who asked."""
    _require_admin(actor)
    account = await ChannelAccount.get_or_none(id=account_id, kind="wecom_kf")
    if account is None:
        raise NotFound("微信客服账号不存在")
    if not account.active:
        raise InvalidTransition("该微信客服账号已停用", code="account_inactive")
    open_kfid = account.key
    async with atomic():
        await record_audit(actor=actor, action="kf_recover", object_type="channel_account",
                           object_id=str(account.id), reason=f"补偿拉取 {account.name}")

        async def _enqueue() -> None:
            # one id per account: a second click while the pull waits is the same job
            await enqueue("kf_recover", open_kfid, job_id=f"kf_recover:{open_kfid}")

        await on_commit(_enqueue)


# ---- what the console and the API show -------------------------------------------------------------------------


def safe_error(text: str | None, *, limit: int = 300) -> str:
    """An error message fit to show: personal data masked, cut to ``limit`` characters."""
    if not text:
        return ""
    masked = mask_text(text)
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def _masked_handle(value: str) -> str:
    """A platform handle (openid, userid, address) shown by its first characters only."""
    if len(value) <= 4:
        return "***"
    return value[:4] + "***"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def serialize_outbox(row: OutboxMessage) -> dict[str, Any]:
    """An outbox row as the repair tools show it (never the payload; the recipient and the error masked)."""
    return {"id": row.id, "channel": row.channel, "channel_label": CHANNEL_LABELS.get(row.channel, row.channel),
            "kind": row.kind, "kind_label": KIND_LABELS.get(row.kind, row.kind), "status": row.status,
            "status_label": OUTBOX_STATUS_LABELS.get(row.status, row.status),
            "replayable": row.status in OUTBOX_REPLAYABLE, "attempts": row.attempts,
            "recipient": _masked_handle(row.recipient), "error": safe_error(row.last_error),
            "delivery_state": row.delivery_state, "ticket_id": row.ticket_id,  # type: ignore[attr-defined]
            "created_at": _iso(row.created_at), "next_attempt_at": _iso(row.next_attempt_at),
            "sent_at": _iso(row.sent_at)}


def serialize_inbound(event: InboundEvent) -> dict[str, Any]:
    """A stored callback as the repair tools show it (never the payload; the error masked)."""
    account: ChannelAccount | None = event.channel_account  # type: ignore[assignment]
    kind = account.kind if account is not None else event.dedupe_key.split(":", 1)[0]
    return {"id": event.id, "channel": kind, "channel_label": CHANNEL_LABELS.get(kind, kind),
            "account_id": account.id if account is not None else None,
            "account_name": account.name if account is not None else "",
            "status": event.status, "status_label": INBOUND_STATUS_LABELS.get(event.status, event.status),
            "replayable": event.status in INBOUND_REPLAYABLE, "attempts": event.attempts,
            "error": safe_error(event.error), "received_at": _iso(event.received_at),
            "processed_at": _iso(event.processed_at)}
