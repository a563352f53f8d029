"""Every entry that opens a ticket goes through the intake flow: extraction and routing apply the same way to a
message, to staff in H5 and in the chat sidebar, to a customer on the H5 page and to the API."""

from __future__ import annotations

from typing import Any

import httpx

from app import intake
from app.staff.models import SkillGroup
from app.tickets import routing
from app.tickets.models import Ticket, TicketEvent
from tests import factories

RULES = """
default_group: 客服组
rules:
  - name: 发票财务
    when: {keywords: [发票]}
    then: {group: 财务组}
  - name: VIP 提升优先级
    when: {vip_min: 1}
    then: {priority: '+1', tags: [VIP]}
"""


async def _desk() -> dict[str, Any]:
    data = await factories.org()
    finance = await SkillGroup.create(name="财务组", department_id=2)
    data["groups"]["finance"] = finance
    await routing.store(ruleset=routing.parse_yaml(RULES))
    return data


async def _lead_sees(api: httpx.AsyncClient, data: dict[str, Any], ticket_id: int) -> int:
    h = {"Authorization": f"Bearer {await factories.token(data['people']['lead'])}"}
    return (await api.get(f"/api/v1/tickets/{ticket_id}", headers=h)).status_code


async def test_a_phone_ticket_about_an_invoice_from_each_entry_reaches_the_finance_group(
        api: httpx.AsyncClient) -> None:
    data = await _desk()
    agent = await factories.actor(data["people"]["agent"])
    customer = await factories.customer(phone="13812345678")
    opened = [
        await intake.staff_ticket(actor=agent, customer=customer, subject="客户来电：发票抬头开错了",
                                  source="staff_h5"),
        await intake.staff_ticket(actor=agent, customer=customer, subject="要重开发票", source="sidebar"),
        await intake.customer_ticket(customer=customer, account=None, subject="", description="发票还没收到"),
    ]
    admin = {"Authorization": f"Bearer {await factories.token(data['people']['admin'])}"}
    r = await api.post("/api/v1/tickets", headers=admin, json={"customer_id": customer.id, "subject": "发票金额不对"})
    assert r.status_code == 201, r.text
    opened.append(await Ticket.get(id=r.json()["id"]))
    finance = data["groups"]["finance"]
    assert [t.group_id for t in opened] == [finance.id] * 4  # type: ignore[attr-defined]
    # staff who open a ticket keep it; the customer's and the API's wait in the group's queue
    assert [t.assignee_id for t in opened] == [agent.staff_id, agent.staff_id, None, None]  # type: ignore[attr-defined]
    for t in opened:
        assert await _lead_sees(api, data, t.id) == 200
        record = await TicketEvent.get(ticket_id=t.id, kind="created")
        assert record.data["matched"] == ["发票财务"]
    sources = [(await TicketEvent.get(ticket_id=t.id, kind="created")).data["source"] for t in opened]
    assert sources == ["staff_h5", "sidebar", "customer_h5", "api"]


async def test_routing_never_lowers_what_a_person_chose_and_still_raises_for_a_vip(db: None) -> None:
    data = await _desk()
    agent = await factories.actor(data["people"]["agent"])
    customer = await factories.customer()
    urgent = await intake.staff_ticket(actor=agent, customer=customer, subject="紧急：系统宕机", priority="urgent")
    assert urgent.priority == "urgent"
    customer.vip_level = 1
    await customer.save()
    raised = await intake.staff_ticket(actor=agent, customer=customer, subject="咨询", priority="normal")
    assert (raised.priority, raised.tags) == ("high", ["VIP"])
    chosen = await intake.staff_ticket(actor=agent, customer=customer, subject="发票问题",
                                       group_id=data["groups"]["service"].id)
    assert chosen.group_id == data["groups"]["service"].id  # type: ignore[attr-defined]
