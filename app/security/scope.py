"""Who is acting, and what they may see: the department scope applied by every service query.

A staff member sees the tickets of the skill groups owned by their departments (and of groups they are a member
of) and the tickets assigned to them; a lead also sees the groups of every department below the ones they lead;
an admin sees everything. Out-of-scope objects are reported as missing (404), so their existence never leaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tortoise.expressions import Q

from app.staff.models import Department, SkillGroup, Staff

ROLES = ("admin", "lead", "agent")


@dataclass(frozen=True)
class Actor:
    """The caller of a service function."""

    kind: str  # staff | system | customer | bot
    staff_id: int | None = None
    role: str = "agent"
    can_reveal: bool = False
    #: skill groups in scope; None means every group (admin, system)
    group_ids: frozenset[int] | None = field(default=frozenset())
    name: str = ""
    #: departments in scope (own ones, plus the subtrees a lead leads); None means every department
    department_ids: frozenset[int] | None = field(default=frozenset())
    #: when an H5 (WeCom login) caller last logged in, epoch seconds; None for API tokens and system actors
    login_at: int | None = None
    #: what an API token allows (read, write, events, admin); None: no token restricts it (H5 session, system)
    scopes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.group_ids is None

    def allows(self, scope: str) -> bool:
        """Whether the caller's token carries ``scope`` (callers without a token are limited by role only)."""
        return self.scopes is None or scope in self.scopes

    def ticket_filter(self) -> Q:
        """The tortoise filter every ticket query carries."""
        if self.group_ids is None:
            return Q()
        q = Q(group_id__in=list(self.group_ids)) if self.group_ids else Q(id=-1)
        if self.staff_id is not None:
            q = q | Q(assignee_id=self.staff_id)
        return q

    def sees_group(self, group_id: int | None) -> bool:
        return self.group_ids is None or (group_id is not None and group_id in self.group_ids)


SYSTEM = Actor(kind="system", group_ids=None, role="admin", can_reveal=False, name="系统")


def customer_actor() -> Actor:
    """An actor for changes a customer causes (a message that reopens a ticket)."""
    return Actor(kind="customer", group_ids=None, role="agent", name="客户")


async def actor_for(staff: Staff) -> Actor:
    """Compute a staff member's scope from the directory: departments, led subtrees, group memberships."""
    if staff.role == "admin":
        return Actor(kind="staff", staff_id=staff.id, role="admin", can_reveal=True, group_ids=None, name=staff.name,
                     department_ids=None)
    dept_ids: set[int] = {int(d) for d in (staff.department_ids or [])}
    if staff.department_id is not None:  # type: ignore[attr-defined]
        dept_ids.add(staff.department_id)  # type: ignore[attr-defined]
    led = [int(d) for d in (staff.leads_department_ids or [])]
    if staff.role == "lead" and led:
        paths = await Department.filter(id__in=led).values_list("path", flat=True)
        q = Q()
        for path in paths:
            q |= Q(path__startswith=path)
        if paths:
            dept_ids.update(int(d) for d in await Department.filter(q).values_list("id", flat=True))  # type: ignore[call-overload]
    groups: set[Any] = set(await SkillGroup.filter(department_id__in=list(dept_ids)).values_list("id", flat=True))
    groups.update(await SkillGroup.filter(members__id=staff.id).values_list("id", flat=True))
    return Actor(
        kind="staff",
        staff_id=staff.id,
        role=staff.role,
        can_reveal=staff.can_reveal or staff.role == "lead",
        group_ids=frozenset(int(g) for g in groups),
        name=staff.name,
        department_ids=frozenset(dept_ids),
    )
