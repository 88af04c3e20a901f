"""The one place that decides who may do what.

``may(user, action, obj)`` is asked by views (403 otherwise), by templates
(which buttons to show) and by the services (which refuse regardless of what
the view did). Task and part actions are added with the workflow.
"""
from __future__ import annotations

from models import Role

# Actions on the plan as a whole, by role.
PLAN_ACTIONS = {
    "plan.view": set(Role.ALL),
    "plan.import": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "plan.export": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "admin.manage": {Role.OFFICE_ADMIN},
    "audit.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
}


def may(user, action: str, obj=None) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if action in PLAN_ACTIONS:
        return user.role in PLAN_ACTIONS[action]
    return False
