"""客户合并 on the phone (h5/merge_pages.py): suggested pairs with masked contacts, merge keeping the chosen record,
the result page with 撤销合并, rights (admins and leads, in their scope), and bad or repeated submissions."""

from __future__ import annotations

import re

import httpx

from app.customers import service as customers
from app.customers.models import Customer, CustomerMerge
from app.security.models import AuditLog
from app.security.scope import SYSTEM
from app.staff.models import SkillGroup
from app.tickets import service as tickets
from app.tickets.models import Ticket
from tests.h5.conftest import H5, csrf_of

PHONE = "13812345678"


async def _customer(name: str, *, phone: str | None = PHONE, group: str = "一线客服组", ticket_count: int = 1,
                    verified: bool = True) -> Customer:
    customer = await customers.create(name=name, phone=phone, verified=verified)
    g = await SkillGroup.get(name=group)
    for i in range(ticket_count):
        await tickets.create(actor=SYSTEM, customer_id=customer.id, subject=f"{name}的问题{i}", group_id=g.id)
    return customer


async def _post(client: httpx.AsyncClient, path: str, data: dict[str, str], *,
                page: str = "/h5/merges") -> httpx.Response:
    html = (await client.get(page)).text
    return await client.post(path, data={"csrf_token": csrf_of(html), **data})


async def test_a_lead_reviews_keeps_the_chosen_record_and_can_undo(h5: H5) -> None:
    old = await _customer("王先生", ticket_count=1)
    new = await _customer("王建国", ticket_count=2)
    await _customer("不相干", phone="13900001111")  # no shared contact: never suggested
    await h5.login_staff("zhangwei")
    page = (await h5.client.get("/h5/merges")).text
    assert "建议合并的客户" in page and "手机号相同（已验证）" in page
    assert PHONE not in page and "138****5678" in page
    assert "不相干" not in page
    pair = page[page.index('class="card form merge-pair"'):page.index("</form>")]
    assert re.search(rf'value="{old.id}" checked> 保留这条（较早）', pair)
    assert "王先生" in pair and "王建国" in pair and "工单 1 张" in pair and "工单 2 张" in pair

    r = await _post(h5.client, "/h5/merges", {"a": str(old.id), "b": str(new.id), "survivor_id": str(new.id),
                                              "comment": "电话确认是同一人"})
    record = await CustomerMerge.get()
    assert r.status_code == 303 and r.headers["location"] == f"/h5/merges/{record.id}?notice=merged"
    assert (record.survivor_id, record.merged_id, record.reason, record.comment) == (  # type: ignore[attr-defined]
        new.id, old.id, "phone", "电话确认是同一人")
    assert (await Customer.get(id=old.id)).merged_into_id == new.id  # type: ignore[attr-defined]
    assert await Ticket.filter(customer_id=new.id).count() == 3
    audit = await AuditLog.get(action="merge")
    assert audit.reason == f"合并客户 #{old.id}：电话确认是同一人"

    shown = (await h5.client.get(r.headers["location"])).text
    assert "已合并。如果合并错了，可以在下面撤销。" in shown
    assert f"客户「王先生」#{old.id} 并入「王建国」#{new.id}" in shown
    assert "依据：手机号相同（已验证） · 操作人：张伟" in shown and "工单 1 · 会话 0 · 消息 0" in shown
    assert "撤销合并" in shown and PHONE not in shown
    listing = (await h5.client.get("/h5/merges")).text
    assert "暂时没有建议合并的客户" in listing and f"客户 #{old.id} 并入 #{new.id}" in listing

    r = await _post(h5.client, f"/h5/merges/{record.id}/undo", {"comment": "不是同一人"},
                    page=f"/h5/merges/{record.id}")
    assert r.status_code == 303 and r.headers["location"] == f"/h5/merges/{record.id}?notice=unmerged"
    assert (await Customer.get(id=old.id)).merged_into_id is None  # type: ignore[attr-defined]
    assert await Ticket.filter(customer_id=old.id).count() == 1
    shown = (await h5.client.get(r.headers["location"])).text
    assert "张伟 于" in shown and "撤销了这次合并" in shown and 'action="/h5/merges/' not in shown
    assert "暂时没有建议合并的客户" in (await h5.client.get("/h5/merges")).text  # a separated pair stays apart


async def test_agents_may_not_merge(h5: H5) -> None:
    old = await _customer("王先生")
    new = await _customer("王建国")
    await h5.login_staff("lina")
    r = await h5.client.get("/h5/merges")
    assert r.status_code == 403 and "只有管理员和组长可以合并客户" in r.text
    r = await _post(h5.client, "/h5/merges", {"a": str(old.id), "b": str(new.id), "survivor_id": str(new.id)},
                    page="/h5/tickets")
    assert r.status_code == 403 and "只有管理员和组长可以合并客户" in r.text
    assert not await CustomerMerge.exists()


async def test_bad_and_repeated_submissions_change_nothing(h5: H5) -> None:
    old = await _customer("王先生")
    new = await _customer("王建国")
    other = await _customer("李四", phone="13900001111")
    await h5.login_staff("admin")
    for data in ({"a": str(old.id), "b": str(new.id), "survivor_id": str(other.id)},
                 {"a": str(old.id), "b": str(old.id), "survivor_id": str(old.id)},
                 {"a": "x", "b": str(new.id), "survivor_id": "x"},
                 {"a": str(old.id), "b": str(new.id)}):
        r = await _post(h5.client, "/h5/merges", data)
        assert r.status_code == 400 and "请选择要保留的客户" in r.text, data
    assert not await CustomerMerge.exists()
    r = await _post(h5.client, "/h5/merges", {"a": str(old.id), "b": str(new.id), "survivor_id": str(old.id)})
    assert r.status_code == 303  # a second tap from a stale page (the token from the result page, which has a form):
    again = await _post(h5.client, "/h5/merges", {"a": str(old.id), "b": str(new.id), "survivor_id": str(old.id)},
                        page=r.headers["location"])
    assert again.status_code == 422 and "这是同一位客户，无需合并" in again.text
    assert await CustomerMerge.all().count() == 1
    r = await _post(h5.client, "/h5/merges", {"a": "999999", "b": str(new.id), "survivor_id": "999999"},
                    page=r.headers["location"])
    assert r.status_code == 404 and "客户不存在" in r.text


async def test_a_lead_sees_and_opens_only_merges_in_scope(h5: H5) -> None:
    old = await _customer("王先生")
    new = await _customer("王建国")
    await h5.login_staff("liuyang")  # leads 技术支持部: these customers' tickets are in 一线客服组
    page = (await h5.client.get("/h5/merges")).text
    assert "暂时没有建议合并的客户" in page and "王先生" not in page
    admin = h5.new_client()
    await h5.login_staff("admin", admin)
    r = await _post(admin, "/h5/merges", {"a": str(old.id), "b": str(new.id), "survivor_id": str(old.id)})
    record = await CustomerMerge.get()
    assert r.status_code == 303
    r = await h5.client.get(f"/h5/merges/{record.id}")
    assert r.status_code == 404 and "合并记录不存在，或你无权查看" in r.text
    r = await _post(h5.client, f"/h5/merges/{record.id}/undo", {}, page="/h5/tickets")
    assert r.status_code == 404 and (await CustomerMerge.get()).undone_at is None
    assert (await h5.client.get("/h5/merges/424242")).status_code == 404
    await admin.aclose()
