"""客户联系 (external contact) read APIs.

获取配置了客户联系功能的成员列表 https://developer.work.weixin.qq.com/document/path/92571
(``externalcontact/get_follow_user_list``); 获取客户列表 path/92113 (``externalcontact/list``); 获取客户详情
path/92114 (``externalcontact/get``, follow_user paged with a cursor); 批量获取客户详情 path/92994
(``externalcontact/batch/get_by_user``: ≤100 userids, limit ≤100 default 50, cursor, ``follow_info`` is one object
with tag ids only); 获取企业标签库 path/92117 (``externalcontact/get_corp_tag_list``).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["routes"]


def _customer_app(call: WeComCall) -> Any:
    app = call.require_app()
    if not app.customer_contact:
        raise WeComError(48002)
    return app


async def get_follow_user_list(call: WeComCall) -> dict[str, Any]:
    """``GET externalcontact/get_follow_user_list``."""
    _customer_app(call)
    return {"follow_user": call.wecom.follow_users()}


async def list_contacts(call: WeComCall) -> dict[str, Any]:
    """``GET externalcontact/list?userid=``."""
    _customer_app(call)
    userid = call.query("userid", missing=40003)
    if userid not in call.wecom.users:
        raise WeComError(60111)
    return {"external_userid": list(call.wecom.contacts_by_user.get(userid, []))}


async def get_contact(call: WeComCall) -> dict[str, Any]:
    """``GET externalcontact/get?external_userid=&cursor=``: the contact and its follow users (500 a page)."""
    app = _customer_app(call)
    external_userid = call.query("external_userid", missing=40096)
    contact = call.wecom.contacts.get(external_userid)
    if contact is None:
        # WeCom answers errors here with the empty objects still present
        raise WeComError(84061, external_contact={}, follow_user=[])
    follows = list(contact.follows.values())
    cursor = call.query("cursor")
    start = int(cursor) if cursor.isdigit() else 0
    page = follows[start: start + 500]
    tags = call.wecom.corp_tags
    follow_user = []
    for f in page:
        item = f.to_json()
        item.pop("tag_id")
        item["tags"] = [{"group_name": tags[t].group_name, "tag_name": tags[t].name, "tag_id": t, "type": 1}
                        for t in f.tag_ids if t in tags]
        follow_user.append(item)
    end = start + len(page)
    return {"external_contact": contact.to_json(unionid=app.sees_unionid), "follow_user": follow_user,
            "next_cursor": str(end) if end < len(follows) else ""}


async def batch_get_by_user(call: WeComCall) -> dict[str, Any]:
    """``POST externalcontact/batch/get_by_user {userid_list, cursor, limit}``."""
    app = _customer_app(call)
    data = call.json()
    userids = data.get("userid_list")
    if not isinstance(userids, list) or not userids or len(userids) > 100:
        raise WeComError(40058, "userid_list must hold 1 to 100 userids")
    limit = int(data.get("limit") or 50)
    if not 1 <= limit <= 100:
        raise WeComError(40058, "invalid limit")
    known = [str(u) for u in userids if str(u) in call.wecom.users]
    if not known:
        raise WeComError(701008)
    page, next_cursor = call.wecom.contact_page(known, str(data.get("cursor") or ""), limit)
    contacts = call.wecom.contacts
    return {
        "external_contact_list": [
            {"external_contact": contacts[ext].to_json(unionid=app.sees_unionid),
             "follow_info": contacts[ext].follows[userid].to_json()}
            for ext, userid in page
        ],
        "next_cursor": next_cursor,
        "fail_info": {"unlicensed_userid_list": [str(u) for u in userids if str(u) not in call.wecom.users]},
    }


async def get_corp_tag_list(call: WeComCall) -> dict[str, Any]:
    """``POST externalcontact/get_corp_tag_list``: every tag, grouped."""
    _customer_app(call)
    groups: dict[str, dict[str, Any]] = {}
    for tag in sorted(call.wecom.corp_tags.values(), key=lambda t: (t.group_id, t.order, t.id)):
        group = groups.setdefault(tag.group_id, {"group_id": tag.group_id, "group_name": tag.group_name,
                                                 "create_time": 0, "order": 0, "deleted": False, "tag": []})
        group["tag"].append({"id": tag.id, "name": tag.name, "create_time": 0, "order": tag.order,
                             "deleted": False})
    return {"tag_group": list(groups.values())}


routes: list[Route] = [
    wecom_route("externalcontact/get_follow_user_list", get_follow_user_list, methods=["GET"]),
    wecom_route("externalcontact/list", list_contacts, methods=["GET"]),
    wecom_route("externalcontact/get", get_contact, methods=["GET"]),
    wecom_route("externalcontact/batch/get_by_user", batch_get_by_user, methods=["POST"]),
    wecom_route("externalcontact/get_corp_tag_list", get_corp_tag_list, methods=["POST"]),
]
