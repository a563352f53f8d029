"""Cards to staff through WeCom: exact message/send JSON, one card per cause even when the job is retried, and
nothing for staff outside the ticket's scope."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.outbox import service as outbox_service
from app.outbox.jobs import sweep_outbox
from app.outbox.models import OutboxMessage
from app.security.scope import SYSTEM
from app.seed import ensure_org
from app.staff.models import SkillGroup
from app.tickets import service as tickets
from app.tickets.models import Ticket
from app.timeutil import set_clock, utcnow
from tests import factories
from tests.wecomenv import WeComEnv


async def _ticket(env: WeComEnv, *, assignee: str | None) -> Ticket:
    people = await ensure_org()
    group = await SkillGroup.get(name="一线客服组")
    customer = await factories.customer(name="王先生")
    return await tickets.create(actor=SYSTEM, customer_id=customer.id, subject="退款还没到账", group_id=group.id,
                                assignee_id=people[assignee].id if assignee else None, priority="high")


async def test_assignment_card_is_a_template_card_opening_the_ticket_through_oauth(wecom: WeComEnv) -> None:
    ticket = await _ticket(wecom, assignee="lina")
    await wecom.settle()
    sent = [m for m in wecom.sim.wecom.sent if m.touser == ["lina"]]
    assert len(sent) == 1
    assert sent[0].body == {
        "touser": "lina", "msgtype": "template_card", "agentid": 1000002,
        "template_card": {
            "card_type": "text_notice",
            "source": {"desc": "工单", "desc_color": 0},
            "main_title": {"title": "新工单分配给你", "desc": "退款还没到账"},
            "horizontal_content_list": [{"keyname": "工单号", "value": ticket.number},
                                        {"keyname": "优先级", "value": "高"}],
            "card_action": {"type": 1, "url": f"http://desk/h5/auth/wecom?next=%2Fh5%2Ftickets%2F{ticket.number}"},
        },
        "enable_duplicate_check": 1, "duplicate_check_interval": 1800,
    }
    assert sent[0].delivered_to == ["lina"]
    row = await OutboxMessage.get(recipient="lina")
    assert (row.channel, row.kind, row.status, row.provider_msg_id) == ("wecom_app", "staff_card", "sent",
                                                                         sent[0].msgid)


async def test_a_retried_delivery_job_reaches_the_phone_once(wecom: WeComEnv,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = outbox_service.mark_sent
    crashed: list[int] = []

    async def crash_once(**kwargs: object) -> None:
        if not crashed:
            crashed.append(1)
            raise RuntimeError("worker killed between the send and the bookkeeping")
        await real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox_service, "mark_sent", crash_once)
    await _ticket(wecom, assignee="lina")
    await wecom.settle()
    row = await OutboxMessage.get(recipient="lina")
    assert row.status == "sending"  # the job died after message/send
    later = utcnow() + timedelta(minutes=5)
    set_clock(lambda: later)  # the lease runs out; the sweep takes the row back and sends it again
    try:
        await sweep_outbox({})
        await wecom.settle()
    finally:
        set_clock(None)
    requests = [m for m in wecom.sim.wecom.sent if m.touser == ["lina"]]
    assert [m.duplicate for m in requests] == [False, True]  # WeCom's duplicate check swallowed the second
    assert len(wecom.sim.wecom.messages_to("lina")) == 1
    assert (await OutboxMessage.get(recipient="lina")).status == "sent"


async def test_customer_message_goes_to_the_group_and_nobody_outside_the_scope(wecom: WeComEnv) -> None:
    ticket = await _ticket(wecom, assignee=None)
    from app.notifications import staff

    await staff.customer_message(ticket=await Ticket.get(id=ticket.id), text="什么时候到账？")
    await wecom.settle()
    recipients = sorted(await OutboxMessage.filter(channel="wecom_app").values_list("recipient", flat=True))
    assert "zhaolei" not in recipients and "chenjing" not in recipients and "wangfang" not in recipients
    assert "lina" in recipients
    card = next(m for m in wecom.sim.wecom.sent if m.msgtype == "textcard")
    assert card.body["textcard"]["title"] == f"客户新消息 · {ticket.number}"
    assert "什么时候到账？" in card.body["textcard"]["description"]
    assert wecom.sim.wecom.messages_to("zhaolei") == []
    assert json.dumps(card.body, ensure_ascii=False).count("zhaolei") == 0


async def test_an_invalid_recipient_fails_the_row_permanently(wecom: WeComEnv) -> None:
    wecom.sim.wecom.delete_user("lina")
    await _ticket(wecom, assignee="lina")
    await wecom.settle()
    row = await OutboxMessage.get(recipient="lina")
    assert (row.status, row.delivery_state) == ("failed", "wecom_no_valid_recipient")
