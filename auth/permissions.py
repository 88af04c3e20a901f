"""The one place that decides who may do what.

``may(user, action, obj)`` answers for a plan-wide action (obj None), a Task
(``task.*``) or a TaskPart (``part.*``). It decides *who*; the state machine
(workflow/machine.py) decides *when*. ``can(user, action, obj)`` combines both
for templates deciding which buttons to show. Views answer 403 when ``may``
says no; the services ask again whatever the view did.

The matrix, written down in docs/permissions.md:

| action          | office admin | office staff | leader of part's unit | staff of part's unit | leader of lead unit | viewer |
|-----------------|:-:|:-:|:-:|:-:|:-:|:-:|
| task.view       | ✓ | ✓ | ✓ | ✓ | ✓ (and staff) | ✓ |
| part.start/progress/evidence/submit | | | ✓ | ✓ | | |
| part.verify / part.return | | | | | ✓ | |
| task.close / task.reopen / task.urge / task.edit | ✓ | ✓ | | | | |
| admin.manage    | ✓ | | | | | |
"""
from __future__ import annotations

from models import Role

PLAN_ACTIONS = {
    "plan.view": set(Role.ALL),
    "plan.import": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "plan.export": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "admin.manage": {Role.OFFICE_ADMIN},
    "audit.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "report.generate": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "report.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "overview.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
}

UNIT_ROLES = (Role.UNIT_LEADER, Role.UNIT_STAFF)
OWNER_ACTIONS = ("part.start", "part.progress", "part.evidence", "part.submit")
LEAD_ACTIONS = ("part.verify", "part.return")
OFFICE_TASK_ACTIONS = ("task.close", "task.reopen", "task.urge", "task.edit")

# Which machine event each action fires (None: not a transition).
ACTION_EVENTS = {
    "part.start": "start", "part.submit": "submit", "part.verify": "verify", "part.return": "return",
    "task.close": "close", "task.reopen": "reopen",
    "part.progress": None, "part.evidence": None, "task.urge": None, "task.edit": None,
}


def _authenticated(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and user.is_active


def is_lead_unit(user, task) -> bool:
    return any(u.id == user.unit_id for u in task.lead_units)


def has_part(user, task) -> bool:
    return any(p.unit_id == user.unit_id for p in task.parts)


def may(user, action: str, obj=None) -> bool:
    if not _authenticated(user):
        return False
    if action in PLAN_ACTIONS:
        return user.role in PLAN_ACTIONS[action]
    if action == "task.view":
        if user.role in (Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER):
            return True
        return user.role in UNIT_ROLES and (is_lead_unit(user, obj) or has_part(user, obj))
    if action in OWNER_ACTIONS:
        return user.role in UNIT_ROLES and obj.unit_id == user.unit_id
    if action in LEAD_ACTIONS:
        return user.role == Role.UNIT_LEADER and is_lead_unit(user, obj.task)
    if action in OFFICE_TASK_ACTIONS:
        return user.role in (Role.OFFICE_ADMIN, Role.OFFICE_STAFF)
    if action == "evidence.download":
        return may(user, "task.view", obj.part.task)
    return False


def can(user, action: str, obj) -> bool:
    """``may`` and the machine allows it from the current state (guards aside)."""
    from workflow.machine import can_fire
    from workflow.states import CLOSED, IN_PROGRESS, PLANNED, VERIFIED

    if not may(user, action, obj):
        return False
    event = ACTION_EVENTS.get(action)
    if event is not None:
        return can_fire(obj, event)
    if action in ("part.progress", "part.evidence"):
        return obj.state == IN_PROGRESS
    if action == "task.urge":
        return obj.state in (PLANNED, IN_PROGRESS) or any(p.state in (PLANNED, IN_PROGRESS) for p in obj.parts)
    if action == "task.edit":
        return obj.state not in (VERIFIED, CLOSED)
    return True
