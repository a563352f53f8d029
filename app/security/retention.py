"""Retention of personal data: a daily purge that forgets what we no longer need, and keeps the figures.

Periods (settings, in days): raw callbacks ``RETENTION_RAW_CALLBACK_DAYS`` (30), message texts and media
``RETENTION_MESSAGE_DAYS`` (365), closed tickets' personal data ``RETENTION_CLOSED_TICKET_DAYS`` (3 years).

What the purge does, oldest first, in batches:

- raw callbacks (InboundEvent) older than their period are deleted (a retry from WeChat never comes that late);
- messages older than their period: the text becomes ``[已按保存期限清除]``, the tokens it held are deleted, the
  media files are deleted and the message keeps only its kind, direction, author and time; outbox rows of that age
  (sent, failed, dead or unknown) lose their payload;
- tickets closed (or merged) longer ago than their period: subject and description become the same mark, their
  tokens, the ticket's phone and its custom fields other than the problem type go; the ticket itself, its number,
  status, category, group, times, SLA figures and rating scores stay for the reports; its messages are purged as
  above.

It is idempotent (what is purged is not touched again) and a dry run counts without changing anything. The job
`privacy_purge` runs it daily; `gongdan privacy purge [--dry-run]` runs it by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise.expressions import Q

from app.channels.models import InboundEvent
from app.conversations.models import Message
from app.logs import get_logger
from app.outbox.models import OutboxMessage
from app.security import tokens
from app.settings import Settings, get_settings
from app.tickets.models import Ticket
from app.timeutil import utcnow

log = get_logger(__name__)

PURGED_TEXT = "[已按保存期限清除]"
#: custom fields a purged ticket keeps (figures for the reports, never a person's data)
KEPT_CUSTOM_FIELDS = ("problem_type", "source")
BATCH = 500
PURGED_PAYLOAD = {"purged": True}


@dataclass
class PurgeReport:
    """What one purge did (or, in a dry run, would do)."""

    dry_run: bool
    raw_callbacks: int = 0
    messages: int = 0
    media_files: int = 0
    outbox_payloads: int = 0
    tickets: int = 0
    tokens: int = 0

    def lines(self) -> list[str]:
        """The report in Chinese, one line per kind (the CLI prints it)."""
        head = "演练（未做任何修改）" if self.dry_run else "已清除"
        return [
            f"{head}：",
            f"  原始回调：{self.raw_callbacks} 条",
            f"  消息内容：{self.messages} 条",
            f"  图片及文件：{self.media_files} 个",
            f"  待发消息内容：{self.outbox_payloads} 条",
            f"  已关闭工单的个人信息：{self.tickets} 张",
            f"  加密保存的个人信息：{self.tokens} 项",
        ]

    def to_json(self) -> dict[str, Any]:
        """The report as a dict (the job's result)."""
        return asdict(self)


def _delete_media(items: list[dict[str, Any]], media_dir: Path, *, dry_run: bool) -> int:
    root = media_dir.resolve()
    count = 0
    for item in items or []:
        rel = str(item.get("path") or "")
        if not rel:
            continue
        path = (root / rel).resolve()
        if root not in path.parents or not path.is_file():
            continue
        count += 1
        if not dry_run:
            path.unlink(missing_ok=True)
    return count


async def _purge_messages(query: Any, report: PurgeReport, settings: Settings) -> None:
    """Purge the texts and media of the messages the query selects (not yet purged), in batches."""
    last_id = 0
    base = query.exclude(text=PURGED_TEXT)
    while True:
        rows = await base.filter(id__gt=last_id).order_by("id").limit(BATCH).values("id", "text", "media", "data")
        if not rows:
            return
        last_id = rows[-1]["id"]
        ids: list[int] = []
        token_ids: set[str] = set()
        for row in rows:
            ids.append(row["id"])
            token_ids |= tokens.token_ids_in(row["text"])
            report.media_files += _delete_media(row["media"], settings.media_dir, dry_run=report.dry_run)
        report.messages += len(ids)
        report.tokens += len(token_ids)
        if report.dry_run or not ids:
            continue
        await tokens.drop_tokens(token_ids)
        await Message.filter(id__in=ids).update(text=PURGED_TEXT, media=[], data={})


async def _purge_raw_callbacks(before: datetime, report: PurgeReport) -> None:
    query = InboundEvent.filter(received_at__lt=before)
    if report.dry_run:
        report.raw_callbacks = await query.count()
    else:
        report.raw_callbacks = await query.delete()


async def _purge_outbox(before: datetime, report: PurgeReport) -> None:
    query = OutboxMessage.filter(created_at__lt=before, status__in=["sent", "failed", "dead", "unknown"])
    last_id = 0
    while True:
        # the payload is encrypted at rest, so what is purged already is seen only after reading it
        rows = await query.filter(id__gt=last_id).order_by("id").limit(BATCH).values("id", "payload")
        if not rows:
            return
        last_id = rows[-1]["id"]
        ids = [r["id"] for r in rows if r["payload"] != PURGED_PAYLOAD]
        report.outbox_payloads += len(ids)
        if ids and not report.dry_run:
            await OutboxMessage.filter(id__in=ids).update(payload=PURGED_PAYLOAD)


async def _purge_tickets(before: datetime, report: PurgeReport, settings: Settings) -> None:
    query = Ticket.filter(
        Q(status="closed", closed_at__lt=before) | Q(status="merged", last_activity_at__lt=before)
    ).exclude(subject=PURGED_TEXT)
    last_id = 0
    while True:
        rows = await query.filter(id__gt=last_id).order_by("id").limit(BATCH).values(
            "id", "subject", "description", "custom_fields")
        if not rows:
            return
        last_id = rows[-1]["id"]
        ids = [r["id"] for r in rows]
        token_ids: set[str] = set()
        for row in rows:
            token_ids |= tokens.token_ids_in([row["subject"], row["description"]])
        report.tickets += len(ids)
        report.tokens += len(token_ids)
        await _purge_messages(Message.filter(ticket_id__in=ids), report, settings)
        if report.dry_run:
            continue
        await tokens.drop_tokens(token_ids)
        for row in rows:
            kept = {k: v for k, v in (row["custom_fields"] or {}).items() if k in KEPT_CUSTOM_FIELDS}
            await Ticket.filter(id=row["id"]).update(
                subject=PURGED_TEXT, description=PURGED_TEXT if row["description"] else "", custom_fields=kept,
                phone_enc=None, phone_hash=None)


async def purge(*, dry_run: bool = False, now: datetime | None = None,
                settings: Settings | None = None) -> PurgeReport:
    """Purge personal data past its retention period (or count it, in a dry run)."""
    s = settings or get_settings()
    now = now or utcnow()
    report = PurgeReport(dry_run=dry_run)
    await _purge_raw_callbacks(now - timedelta(days=s.retention_raw_callback_days), report)
    message_cutoff = now - timedelta(days=s.retention_message_days)
    await _purge_messages(Message.filter(created_at__lt=message_cutoff), report, s)
    await _purge_outbox(message_cutoff, report)
    await _purge_tickets(now - timedelta(days=s.retention_closed_ticket_days), report, s)
    log.info("privacy.purge", **report.to_json())
    return report


async def privacy_purge(ctx: dict[str, Any]) -> dict[str, Any]:
    """The daily retention job: purge personal data past its period; returns the report."""
    return (await purge()).to_json()
