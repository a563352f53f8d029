"""The console's side navigation as plain data: one ``NavItem`` line per page.

Add a page by adding one line to ``NAV`` (its section must be one of ``SECTIONS``; the order of lines is the order
on screen). ``roles`` says who sees the entry; the page's own ``console_page(roles=...)`` is what enforces access.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_ROLES", "MANAGERS", "NAV", "SECTIONS", "NavItem", "NavSection", "find", "for_role"]

MANAGERS = ("admin", "lead")
ALL_ROLES = ("admin", "lead", "agent")
SECTIONS = ("概览", "数据报表", "工单", "设置", "渠道与集成", "修复工具")


@dataclass(frozen=True)
class NavItem:
    """One page in the side navigation; ``key`` is what a page passes as ``render_console(active=...)``."""

    section: str
    key: str
    label: str
    href: str
    roles: tuple[str, ...] = MANAGERS


@dataclass(frozen=True)
class NavSection:
    """A section heading with the entries a role sees under it."""

    title: str
    items: tuple[NavItem, ...]


NAV: list[NavItem] = [
    NavItem("概览", "home", "首页", "/console/", ALL_ROLES),
    # 数据报表 (dashboards)
    NavItem("数据报表", "reports.overview", "总览", "/console/reports/overview", ALL_ROLES),
    NavItem("数据报表", "reports.reception", "消息接收率", "/console/reports/reception"),
    NavItem("数据报表", "reports.conversion", "工单转化率", "/console/reports/conversion"),
    NavItem("数据报表", "reports.satisfaction", "客户满意度", "/console/reports/satisfaction", ALL_ROLES),
    NavItem("数据报表", "reports.response", "响应与解决时效", "/console/reports/response", ALL_ROLES),
    NavItem("数据报表", "reports.workload", "工作量", "/console/reports/workload", ALL_ROLES),
    NavItem("数据报表", "reports.bot", "机器人", "/console/reports/bot"),
    NavItem("数据报表", "intelligence", "智能质量", "/console/intelligence"),
    # 工单
    NavItem("工单", "reports.tickets", "工单明细", "/console/tickets", ALL_ROLES),
    # 设置
    NavItem("设置", "settings.rules", "路由规则", "/console/settings/rules"),
    NavItem("设置", "settings.staff", "客服成员", "/console/settings/staff"),
    NavItem("设置", "settings.groups", "技能组", "/console/settings/groups"),
    NavItem("设置", "settings.sla", "SLA 策略", "/console/settings/sla"),
    NavItem("设置", "settings.calendars", "工作日历", "/console/settings/calendars"),
    NavItem("设置", "settings.kb", "知识库", "/console/settings/kb"),
    NavItem("设置", "settings.canned", "快捷回复", "/console/settings/canned"),
    NavItem("设置", "settings.approvals", "审批设置", "/console/settings/approvals"),
    # 渠道与集成
    NavItem("渠道与集成", "settings.channels", "公众号与微信客服", "/console/settings/channels"),
    NavItem("渠道与集成", "channels.mailboxes", "邮箱", "/console/channels/mailboxes", ("admin",)),
    NavItem("渠道与集成", "channels.webchat", "网页聊天", "/console/channels/webchat", ("admin",)),
    NavItem("渠道与集成", "channels.webhooks", "事件推送", "/console/channels/webhooks", ("admin",)),
    NavItem("渠道与集成", "channels.rules", "业务事件规则", "/console/channels/rules", ("admin",)),
    NavItem("渠道与集成", "channels.tokens", "API 令牌", "/console/channels/tokens", ("admin",)),
    # 修复工具
    NavItem("修复工具", "repair.outbox", "发送失败的消息", "/console/repair/outbox", ("admin",)),
    NavItem("修复工具", "repair.inbound", "处理失败的回调", "/console/repair/inbound", ("admin",)),
    NavItem("修复工具", "repair.sync", "企业微信同步", "/console/repair/sync", ("admin",)),
    NavItem("修复工具", "repair.audit", "审计日志", "/console/repair/audit", ("admin",)),
]


def for_role(role: str) -> list[NavSection]:
    """The sections (in ``SECTIONS`` order) with the entries ``role`` may see; empty sections are left out."""
    out: list[NavSection] = []
    for title in SECTIONS:
        items = tuple(item for item in NAV if item.section == title and role in item.roles)
        if items:
            out.append(NavSection(title=title, items=items))
    return out


def find(key: str) -> NavItem | None:
    """The entry with ``key`` (for the page title and breadcrumb)."""
    return next((item for item in NAV if item.key == key), None)
