"""WeCom's approval app (审批): ``oa/applyevent``, ``oa/getapprovaldetail``, and deciding as an approver.

提交审批申请 https://developer.work.weixin.qq.com/document/path/91853 (the ``process.node_list`` shape),
获取审批申请详情 https://developer.work.weixin.qq.com/document/path/91983, 审批状态通知事件
https://developer.work.weixin.qq.com/document/path/91815. An application walks its nodes in order; each node is
或签 (one approver decides). ``decide`` plays an approver in the WeCom app; ``approval_change_fields`` builds the
``ApprovalInfo`` of the sys_approval_change push (SpRecord and Details repeat per node/approver), which a test sends
with ``WeComDriver.send_event("sys_approval_change", ...)`` - as often as it likes, because WeCom sends duplicates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Route

from simulator.state import SimulatorState
from simulator.wecom.api import WeComCall, wecom_route
from simulator.wecom.errors import WeComError

__all__ = ["OAStore", "SimApproval", "approval_change_fields", "decide", "oa_store", "routes"]

#: sp_status: 1 审批中, 2 已通过, 3 已驳回, 4 已撤销
PENDING, APPROVED, REJECTED, CANCELLED = 1, 2, 3, 4


@dataclass
class SimNode:
    userids: list[str]
    #: per approver: (sp_status, speech, sptime)
    decisions: dict[str, tuple[int, str, int]] = field(default_factory=dict)

    @property
    def status(self) -> int:
        for status, _, _ in self.decisions.values():
            if status in (APPROVED, REJECTED):
                return status  # 或签: the first decision settles the node
        return PENDING


@dataclass
class SimApproval:
    sp_no: str
    template_id: str
    creator: str
    party: int | None
    apply_time: int
    nodes: list[SimNode]
    apply_data: dict[str, Any]
    status: int = PENDING

    def detail(self) -> dict[str, Any]:
        """The ``info`` object of oa/getapprovaldetail."""
        return {
            "sp_no": self.sp_no, "sp_name": "工单升级审批", "sp_status": self.status, "template_id": self.template_id,
            "apply_time": self.apply_time,
            "applyer": {"userid": self.creator, "partyid": str(self.party or "")},
            "sp_record": [{
                "sp_status": node.status, "approverattr": 2,
                "details": [{"approver": {"userid": u}, "speech": node.decisions.get(u, (PENDING, "", 0))[1],
                             "sp_status": node.decisions.get(u, (PENDING, "", 0))[0],
                             "sptime": node.decisions.get(u, (PENDING, "", 0))[2], "media_id": []}
                            for u in node.userids],
            } for node in self.nodes],
            "notifyer": [], "apply_data": self.apply_data, "comments": [],
        }


class OAStore:
    """Approvals by sp_no (one per simulator)."""

    def __init__(self) -> None:
        self.approvals: dict[str, SimApproval] = {}
        self._seq = itertools.count(1)
        self.applications: list[dict[str, Any]] = []

    def next_sp_no(self, day: str) -> str:
        return f"{day}{next(self._seq):04d}"


def oa_store(state: SimulatorState) -> OAStore:
    """The approval state hanging on the WeCom store."""
    store: OAStore = state.wecom.extension("oa", OAStore)
    return store


async def apply_event(call: WeComCall) -> dict[str, Any]:
    """``POST oa/applyevent``: the creator and approvers must be members; 301025 otherwise."""
    call.require_app()
    data = call.json()
    users = call.wecom.users
    creator = str(data.get("creator_userid") or "")
    if creator not in users:
        raise WeComError(301025, "get approval param error: creator_userid not in app visiable range")
    if not data.get("template_id"):
        raise WeComError(301025, "get approval param error: template_id")
    nodes_raw = ((data.get("process") or {}).get("node_list")) or []
    if not nodes_raw and not data.get("use_template_approver"):
        raise WeComError(301025, "get approval param error: process")
    nodes = []
    for node in nodes_raw:
        userids = [str(u) for u in node.get("userid") or []]
        if not userids or any(u not in users for u in userids):
            raise WeComError(301025, "get approval param error: approver userid")
        nodes.append(SimNode(userids=userids))
    import time

    now = int(call.state.clock.now())
    store = oa_store(call.state)
    with call.state.lock:
        sp_no = store.next_sp_no(time.strftime("%Y%m%d", time.gmtime(now + 8 * 3600)))
        store.applications.append(data)
        store.approvals[sp_no] = SimApproval(sp_no=sp_no, template_id=str(data["template_id"]), creator=creator,
                                             party=data.get("choose_department"), apply_time=now, nodes=nodes,
                                             apply_data=data.get("apply_data") or {})
    return {"errcode": 0, "errmsg": "ok", "sp_no": sp_no}


async def get_detail(call: WeComCall) -> dict[str, Any]:
    """``POST oa/getapprovaldetail``."""
    call.require_app()
    sp_no = str(call.json().get("sp_no") or "")
    approval = oa_store(call.state).approvals.get(sp_no)
    if approval is None:
        raise WeComError(301025, "get approval param error: sp_no")
    return {"errcode": 0, "errmsg": "ok", "info": approval.detail()}


def decide(state: SimulatorState, sp_no: str, userid: str, *, approve: bool, speech: str = "") -> SimApproval:
    """An approver decides in the WeCom app: the current node moves, and the application with it."""
    store = oa_store(state)
    with state.lock:
        approval = store.approvals[sp_no]
        if approval.status != PENDING:
            raise ValueError(f"approval {sp_no} is already finished")
        node = next(n for n in approval.nodes if n.status == PENDING)
        if userid not in node.userids:
            raise ValueError(f"{userid} is not the approver of the current node")
        node.decisions[userid] = (APPROVED if approve else REJECTED, speech, int(state.clock.now()))
        if not approve:
            approval.status = REJECTED
        elif all(n.status == APPROVED for n in approval.nodes):
            approval.status = APPROVED
        return approval


def approval_change_fields(state: SimulatorState, sp_no: str, *, action: int = 2) -> list[tuple[str, Any]]:
    """The ``ApprovalInfo`` element of a sys_approval_change push (``action``: StatuChangeEvent, 2 = 同意)."""
    approval = oa_store(state).approvals[sp_no]
    records: list[tuple[str, Any]] = []
    for node in approval.nodes:
        details: list[tuple[str, Any]] = []
        for u in node.userids:
            status, speech, sptime = node.decisions.get(u, (PENDING, "", 0))
            details.append(("Details", [("Approver", [("UserId", u)]), ("Speech", speech), ("SpStatus", status),
                                        ("SpTime", sptime)]))
        records.append(("SpRecord", [("SpStatus", node.status), ("ApproverAttr", 2), *details]))
    info: list[tuple[str, Any]] = [
        ("SpNo", approval.sp_no), ("SpName", "工单升级审批"), ("SpStatus", approval.status),
        ("TemplateId", approval.template_id), ("ApplyTime", approval.apply_time),
        ("Applyer", [("UserId", approval.creator), ("Party", str(approval.party or ""))]),
        *records, ("StatuChangeEvent", action),
    ]
    return [("ApprovalInfo", info)]


routes: list[Route] = [
    wecom_route("oa/applyevent", apply_event, methods=["POST"]),
    wecom_route("oa/getapprovaldetail", get_detail, methods=["POST"]),
]
