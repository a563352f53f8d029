"""A generated WeCom organisation of any size (deterministic per seed), the demo organisation, and random
directory changes for tests and bench/.

Sizes go up to 2,000 departments, 20,000 members and 200,000 external contacts (``python -m simulator --wecom-org
2000,20000,200000``). Every department gets a leader; members sit in one department (one in ten in two); mobile
numbers and emails are fake but well-formed; external contacts follow one member (one in seven follows two), carry
corp tags (客户等级: VIP/SVIP/普通客户, 来源: ...), remark mobiles for some, and a unionid for WeChat users.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from simulator.wecom.store import WeComApp, WeComStore

__all__ = [
    "DEMO_DEPARTMENTS",
    "DEMO_STAFF",
    "DEMO_WECOM_ENV",
    "OrgSize",
    "add_default_apps",
    "external_userid_for",
    "generate_org",
    "load_demo_org",
    "random_change",
    "unionid_for",
]

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉雪琳晨宇浩然思远梓涵子轩"
_CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆", "苏州", "天津"]
_UNITS = ["客户服务部", "售后服务部", "技术支持部", "销售部", "市场部", "财务部", "物流部", "质量部", "研发部",
          "运营部"]
_POSITIONS = ["客服专员", "高级客服", "售后工程师", "技术支持", "销售顾问", "组长", "经理", "主管"]

#: (tag id, name, group id, group name)
CORP_TAGS = [
    ("etLEVELVIP0000000000000000000001", "VIP", "etGROUPLEVEL00000000000000000001", "客户等级"),
    ("etLEVELSVIP000000000000000000002", "SVIP", "etGROUPLEVEL00000000000000000001", "客户等级"),
    ("etLEVELNORMAL0000000000000000003", "普通客户", "etGROUPLEVEL00000000000000000001", "客户等级"),
    ("etSOURCEWEB000000000000000000004", "官网", "etGROUPSOURCE0000000000000000002", "来源"),
    ("etSOURCEEXPO00000000000000000005", "展会", "etGROUPSOURCE0000000000000000002", "来源"),
    ("etSOURCEREF000000000000000000006", "转介绍", "etGROUPSOURCE0000000000000000002", "来源"),
]


@dataclass(frozen=True)
class OrgSize:
    departments: int = 20
    staff: int = 100
    external_contacts: int = 500

    @classmethod
    def parse(cls, text: str) -> OrgSize:
        """``"2000,20000,200000"`` -> OrgSize."""
        parts = [int(p) for p in text.split(",")]
        if len(parts) != 3 or parts[0] < 1 or min(parts) < 0:
            raise ValueError("org size is departments,staff,external_contacts")
        return cls(*parts)


def external_userid_for(n: int) -> str:
    """A stable external_userid (``wm`` + 30 characters, the real shape)."""
    return "wm" + hashlib.sha1(f"ext{n}".encode()).hexdigest()[:30]


def unionid_for(n: int) -> str:
    """The unionid a generated WeChat contact has (so tests can give an MP follower the same one)."""
    return "oUnion" + hashlib.sha1(f"union{n}".encode()).hexdigest()[:22]


#: the desk's WeCom settings matching ``add_default_apps`` (``gongdan run`` uses them as defaults)
DEMO_WECOM_ENV: dict[str, str] = {
    "WECOM_CORP_ID": "wwsimcorp0000000001",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_AGENT_SECRET": "sim-agent-secret",
    "WECOM_TOKEN": "simwecomtoken",
    "WECOM_AES_KEY": "SimWeComAesKey0123456789abcdefghijklmnopqrs",
    "WECOM_CONTACT_SECRET": "sim-contact-secret",
    "WECOM_CONTACT_TOKEN": "simcontacttoken",
    "WECOM_CONTACT_AES_KEY": "SimContactAesKey0123456789abcdefghijklmnopq",
    "WECOM_CUSTOMER_SECRET": "sim-customer-secret",
}


def add_default_apps(store: WeComStore, *, agent_id: int = 1000002, app_secret: str = "sim-agent-secret",
                     contact_secret: str = "sim-contact-secret", customer_secret: str = "sim-customer-secret",
                     token: str = "simwecomtoken", aes_key: str = "SimWeComAesKey0123456789abcdefghijklmnopqrs",
                     contact_token: str = "simcontacttoken",
                     contact_aes_key: str = "SimContactAesKey0123456789abcdefghijklmnopq",
                     app_callback_url: str | None = None, contacts_callback_url: str | None = None) -> None:
    """The three secrets the desk uses: the self-built app, 通讯录同步 and 客户联系."""
    store.add_app(WeComApp(name="app", secret=app_secret, agent_id=agent_id, token=token, aes_key=aes_key,
                           callback_url=app_callback_url))
    store.add_app(WeComApp(name="contacts", secret=contact_secret, token=contact_token, aes_key=contact_aes_key,
                           callback_url=contacts_callback_url, sees_private=True, may_list_ids=True,
                           customer_contact=False))
    store.add_app(WeComApp(name="customer", secret=customer_secret, token=token, aes_key=aes_key))


def _name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))


def _mobile(rng: random.Random) -> str:
    return rng.choice(("138", "139", "136", "150", "158", "186", "188")) + f"{rng.randrange(10**8):08d}"


def generate_org(store: WeComStore, size: OrgSize, *, seed: int = 1, root_name: str = "示例科技有限公司") -> None:
    """Fill the store's directory and external contacts (replacing what is there)."""
    rng = random.Random(seed)
    with store._lock:
        store._init_directory()
        store.set_department(1, root_name, 0, 0)
        depth = {1: 0}
        ids = [1]
        for n in range(2, size.departments + 1):
            parent = rng.choice([d for d in ids[-50:] if depth[d] < 4] or [1])
            depth[n] = depth[parent] + 1
            ids.append(n)
            store.set_department(n, f"{rng.choice(_CITIES)}{rng.choice(_UNITS)}{n}", parent, n * 10)
        leaders: dict[int, str] = {}
        for n in range(1, size.staff + 1):
            userid = f"u{n:05d}"
            primary = ids[(n - 1) % len(ids)] if n <= len(ids) else rng.choice(ids)
            departments = [primary]
            if rng.random() < 0.1 and len(ids) > 1:
                other = rng.choice(ids)
                if other != primary:
                    departments.append(other)
            lead_flags = [1 if d not in leaders else 0 for d in departments[:1]] + [0] * (len(departments) - 1)
            if lead_flags[0]:
                leaders[primary] = userid
            store.set_user(userid, name=_name(rng), department=departments, is_leader_in_dept=lead_flags,
                           position=rng.choice(_POSITIONS), mobile=_mobile(rng), email=f"{userid}@example.com",
                           gender=rng.choice(("1", "2")), avatar=f"https://wework.qpic.cn/wwhead/{userid}/0",
                           main_department=primary)
        for dept_id, userid in leaders.items():
            store.departments[dept_id].department_leader = [userid]
        for user in store.users.values():
            boss = leaders.get(user.main_department)
            user.direct_leader = [boss] if boss and boss != user.userid else []
        userids = sorted(store.users)
        store.set_tag(1, "值班", userids[: max(1, len(userids) // 20)])
        store.set_tag(2, "质检", userids[len(userids) // 2: len(userids) // 2 + max(1, len(userids) // 50)])
        for i, (tag_id, name, group_id, group_name) in enumerate(CORP_TAGS):
            store.add_corp_tag(tag_id, name, group_id, group_name, i)
        for n in range(1, size.external_contacts + 1):
            _add_contact(store, rng, n, userids)


def _add_contact(store: WeComStore, rng: random.Random, n: int, userids: list[str]) -> None:
    ext = external_userid_for(n)
    wechat = rng.random() < 0.85
    store.set_external_contact(ext, name=_name(rng), type=1 if wechat else 2, gender=rng.choice((0, 1, 2)),
                               unionid=unionid_for(n) if wechat and rng.random() < 0.6 else "",
                               corp_name="" if wechat else f"{rng.choice(_CITIES)}贸易有限公司",
                               avatar=f"https://wx.qlogo.cn/mmhead/{ext[-8:]}/0")
    followers = [rng.choice(userids)]
    if rng.random() < 0.15:
        followers.append(rng.choice(userids))
    for userid in dict.fromkeys(followers):
        tags = [rng.choice(CORP_TAGS[:3])[0]]
        if rng.random() < 0.5:
            tags.append(rng.choice(CORP_TAGS[3:])[0])
        store.follow(ext, userid, remark=f"客户{n}", description=rng.choice(("", "老客户", "对接采购")),
                     tag_ids=tags, remark_mobiles=[_mobile(rng)] if rng.random() < 0.3 else [],
                     add_way=rng.choice((1, 2, 3, 202)), state=rng.choice(("", "qr_shop", "web")),
                     remark_corp_name="", oper_userid=userid)


# -- the demo organisation (mirrors app/seed.py so `make run` syncs the same people) ------------------------------

DEMO_DEPARTMENTS: list[tuple[int, str, int]] = [
    (1, "示例科技有限公司", 0), (2, "客户服务部", 1), (3, "一线客服组", 2), (4, "售后服务组", 2), (5, "技术支持部", 1),
    (6, "财务部", 1),
]
#: userid, name, department, leads it
DEMO_STAFF: list[tuple[str, str, int, bool]] = [
    ("admin", "管理员", 1, False), ("zhangwei", "张伟", 2, True), ("lina", "李娜", 3, False),
    ("wangfang", "王芳", 4, False), ("liuyang", "刘洋", 5, True), ("chenjing", "陈静", 5, False),
    ("zhaolei", "赵磊", 6, False),
]


def load_demo_org(store: WeComStore, *, external_contacts: int = 12, seed: int = 7) -> None:
    """The demo company of app/seed.py, plus a few external contacts of the service staff."""
    rng = random.Random(seed)
    with store._lock:
        store._init_directory()
        for dept_id, name, parent in DEMO_DEPARTMENTS:
            store.set_department(dept_id, name, parent, dept_id * 10)
        for i, (userid, name, dept, leads) in enumerate(DEMO_STAFF):
            store.set_user(userid, name=name, department=[dept], is_leader_in_dept=[1 if leads else 0],
                           position="负责人" if leads else "客服专员", mobile=f"1380000{i:04d}",
                           email=f"{userid}@example.com", main_department=dept)
            if leads:
                store.departments[dept].department_leader = [userid]
        for i, (tag_id, name, group_id, group_name) in enumerate(CORP_TAGS):
            store.add_corp_tag(tag_id, name, group_id, group_name, i)
        for n in range(1, external_contacts + 1):
            _add_contact(store, rng, n, ["lina", "wangfang", "chenjing"])


# -- random changes -------------------------------------------------------------------------------------------


def random_change(store: WeComStore, rng: random.Random, counter: list[int]) -> list[tuple[str, dict[str, Any]]]:
    """Apply one random directory change to the store; return the change_contact events WeCom would push for it
    as ``(change_type, ids)`` (a member created into a new department yields two events)."""
    with store._lock:
        kind = rng.random()
        userids = sorted(store.users)
        dept_ids = sorted(store.departments)
        counter[0] += 1
        n = counter[0]
        if kind < 0.25 or not userids:
            userid = f"new{n:05d}"
            dept = rng.choice(dept_ids)
            store.set_user(userid, name=_name(rng), department=[dept], is_leader_in_dept=[0], position="客服专员",
                           mobile=_mobile(rng), email=f"{userid}@example.com", main_department=dept)
            return [("create_user", {"userid": userid})]
        if kind < 0.55:
            userid = rng.choice(userids)
            user = store.users[userid]
            dept = rng.choice(dept_ids)
            store.set_user(userid, name=user.name + ("" if rng.random() < 0.5 else "新"), department=[dept],
                           is_leader_in_dept=[1 if rng.random() < 0.2 else 0], position=rng.choice(_POSITIONS),
                           main_department=dept)
            return [("update_user", {"userid": userid})]
        if kind < 0.70:
            userid = rng.choice(userids)
            store.delete_user(userid)
            return [("delete_user", {"userid": userid})]
        if kind < 0.80:
            dept_id = max(dept_ids) + 1
            parent = rng.choice(dept_ids)
            store.set_department(dept_id, f"新部门{dept_id}", parent, dept_id)
            return [("create_party", {"dept_id": dept_id})]
        if kind < 0.90 and len(dept_ids) > 1:
            dept_id = rng.choice(dept_ids[1:])
            moved = store.departments[dept_id]
            subtree = {d.id for d in store.department_subtree(dept_id)}
            parent = rng.choice([d for d in dept_ids if d not in subtree])
            store.set_department(dept_id, moved.name + "改", parent, moved.order)
            return [("update_party", {"dept_id": dept_id})]
        if kind < 0.95 and len(dept_ids) > 1:
            # only an empty leaf may be deleted
            parents = {d.parentid for d in store.departments.values()}
            members = {d for u in store.users.values() for d in u.department}
            empty = [d for d in dept_ids[1:] if d not in parents and d not in members]
            if empty:
                dept_id = rng.choice(empty)
                store.delete_department(dept_id)
                return [("delete_party", {"dept_id": dept_id})]
        tagid = rng.choice(sorted(store.tags)) if store.tags else 1
        tag = store.tags.get(tagid) or store.set_tag(tagid, "值班")
        add = [u for u in rng.sample(userids, min(3, len(userids))) if u not in tag.userids]
        tag.userids.extend(add)
        removed = [u for u in tag.userids if rng.random() < 0.2 and u not in add]
        for u in removed:
            tag.userids.remove(u)
        return [("update_tag", {"tagid": tagid, "add_users": add, "del_users": removed})]
