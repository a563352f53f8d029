"""Data isolation of external contacts: a customer known through WeCom is visible to the staff whose departments
hold one of its active follow users (and to the follow users themselves, and to admins).

Departments in scope are the actor's own plus, for a lead, the subtrees they lead (``Actor.department_ids``). A
follow user counts in the department of their main department (``Staff.department_id``).
"""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q, Subquery

from app.security.scope import Actor
from app.staff.models import Staff
from wecom_sync.models import ExternalContact, ExternalFollow

__all__ = ["external_contact_customers"]


def external_contact_customers(actor: Actor) -> Any:
    """Customer ids the actor may see through the external contacts of staff in their departments."""
    if actor.department_ids is None:
        return None  # admins see every customer anyway
    q = Q(id=-1)
    if actor.department_ids:
        q |= Q(department_id__in=sorted(actor.department_ids))
    if actor.staff_id is not None:
        q |= Q(id=actor.staff_id)
    staff = Subquery(Staff.filter(q).values("id"))
    contacts = Subquery(ExternalFollow.filter(status="active", staff_id__in=staff).values("contact_id"))
    return ExternalContact.filter(id__in=contacts).values("customer_id")

