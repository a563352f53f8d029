"""通讯录 (directory) read APIs: departments, members, tags.

部门 https://developer.work.weixin.qq.com/document/path/90208 (``department/list``) and path/95350
(``department/simplelist``, ``department/get``); 成员 https://developer.work.weixin.qq.com/document/path/90196
(``user/get``), path/90200/90201 (``user/simplelist``, ``user/list`` per department, no ``fetch_child`` since 2022),
path/96067 (``user/list_id``, 通讯录同步 secret only, cursor paging); 标签 path/90216 (``tag/list``, ``tag/get``).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["routes"]


def _dept_id(call: WeComCall, name: str, *, required: bool) -> int | None:
    raw = call.query(name, missing=40058 if required else None)
    if not raw:
        return None
    if not raw.isdigit():
        raise WeComError(40058, f"invalid {name}")
    return int(raw)


async def department_list(call: WeComCall) -> dict[str, Any]:
    """``GET department/list[?id=]``: the subtree (the whole tree without id)."""
    dept_id = _dept_id(call, "id", required=False) or 1
    if dept_id not in call.wecom.departments:
        raise WeComError(60003)
    return {"department": [d.to_json() for d in call.wecom.department_subtree(dept_id)]}


async def department_simplelist(call: WeComCall) -> dict[str, Any]:
    """``GET department/simplelist[?id=]``: ids, parents and order only."""
    dept_id = _dept_id(call, "id", required=False) or 1
    if dept_id not in call.wecom.departments:
        raise WeComError(60003)
    return {"department_id": [{"id": d.id, "parentid": d.parentid, "order": d.order}
                              for d in call.wecom.department_subtree(dept_id)]}


async def department_get(call: WeComCall) -> dict[str, Any]:
    """``GET department/get?id=``."""
    dept_id = _dept_id(call, "id", required=True)
    dept = call.wecom.departments.get(dept_id)
    if dept is None:
        raise WeComError(60003)
    return {"department": dept.to_json()}


async def user_get(call: WeComCall) -> dict[str, Any]:
    """``GET user/get?userid=``; 60111 once the member is gone."""
    userid = call.query("userid", missing=40003)
    user = call.wecom.users.get(userid)
    if user is None:
        raise WeComError(60111)
    result: dict[str, Any] = user.to_json(private=call.require_app().sees_private)
    return result


async def user_list(call: WeComCall) -> dict[str, Any]:
    """``GET user/list?department_id=``: full members directly in the department."""
    dept_id = _dept_id(call, "department_id", required=True)
    if dept_id not in call.wecom.departments:
        raise WeComError(60003)
    private = call.require_app().sees_private
    return {"userlist": [u.to_json(private=private) for u in call.wecom.users_in(dept_id)]}


async def user_simplelist(call: WeComCall) -> dict[str, Any]:
    """``GET user/simplelist?department_id=``."""
    dept_id = _dept_id(call, "department_id", required=True)
    if dept_id not in call.wecom.departments:
        raise WeComError(60003)
    return {"userlist": [{"userid": u.userid, "name": u.name, "department": list(u.department),
                          "open_userid": u.to_json(private=False)["open_userid"]}
                         for u in call.wecom.users_in(dept_id)]}


async def user_list_id(call: WeComCall) -> dict[str, Any]:
    """``POST user/list_id {cursor, limit}``: one row per (member, department); 通讯录同步 secret only."""
    if not call.require_app().may_list_ids:
        raise WeComError(48002)
    data = call.json() if call.body.strip() else {}
    limit = int(data.get("limit") or 10000)
    if not 1 <= limit <= 10000:
        raise WeComError(40058, "invalid limit")
    cursor = str(data.get("cursor") or "")
    start = int(cursor) if cursor.isdigit() else 0
    rows = [(u.userid, d) for u in sorted(call.wecom.users.values(), key=lambda u: u.userid) for d in u.department]
    page = rows[start: start + limit]
    end = start + len(page)
    return {"next_cursor": str(end) if end < len(rows) else "",
            "dept_user": [{"userid": userid, "department": dept} for userid, dept in page]}


async def tag_list(call: WeComCall) -> dict[str, Any]:
    """``GET tag/list``."""
    return {"taglist": [{"tagid": t.tagid, "tagname": t.tagname} for t in sorted(call.wecom.tags.values(),
                                                                                  key=lambda t: t.tagid)]}


async def tag_get(call: WeComCall) -> dict[str, Any]:
    """``GET tag/get?tagid=``: members and departments of a tag."""
    raw = call.query("tagid", missing=40068)
    tag = call.wecom.tags.get(int(raw)) if raw.isdigit() else None
    if tag is None:
        raise WeComError(40068)
    users = call.wecom.users
    return {"tagname": tag.tagname,
            "userlist": [{"userid": u, "name": users[u].name} for u in tag.userids if u in users],
            "partylist": list(tag.partylist)}


routes: list[Route] = [
    wecom_route("department/list", department_list, methods=["GET"]),
    wecom_route("department/simplelist", department_simplelist, methods=["GET"]),
    wecom_route("department/get", department_get, methods=["GET"]),
    wecom_route("user/get", user_get, methods=["GET"]),
    wecom_route("user/list", user_list, methods=["GET"]),
    wecom_route("user/simplelist", user_simplelist, methods=["GET"]),
    wecom_route("user/list_id", user_list_id, methods=["POST"]),
    wecom_route("tag/list", tag_list, methods=["GET"]),
    wecom_route("tag/get", tag_get, methods=["GET"]),
]
