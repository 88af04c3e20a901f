"""The one place that decides who may do what.

``may(user, action, obj)`` answers for a plan-wide action (obj None), a Task
(``task.*``) or a TaskPart (``part.*``). It decides *who*; the machine
(``workflow/machine.py: refusal``) decides *when*. ``can(user, action, obj)``
combines both: templates ask it which buttons to show, and the services
enforce the same two answers (``services._require``), so a button is shown
exactly when the action can succeed, inputs aside. ``denial`` gives the reason
in Chinese when ``may`` says no. The matrix is written down in docs/permissions.md.
"""
from __future__ import annotations

import functools

from flask import current_app, g, has_app_context
from sqlalchemy import bindparam, select

from models import Role, Task, TaskPart, User
from workflow.extensions import db
from workflow.machine import refusal
from workflow.vocabulary import SubmissionOutcome

PLAN_ACTIONS = {
    "plan.view": set(Role.ALL),
    "plan.import": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "plan.export": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "admin.manage": {Role.OFFICE_ADMIN},
    "audit.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "report.generate": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "report.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "overview.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "round.open": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "round.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    # Work that runs by itself (docs/reminders.md, docs/notices.md).
    "reminders.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "reminders.manage": {Role.OFFICE_ADMIN},
    "escalation.view": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER},
    "escalation.bulletin": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    "notices.log": {Role.OFFICE_ADMIN, Role.OFFICE_STAFF},
    # 考核排名: the office and viewers see every unit; a unit's users see their own
    # unit's line and its place, nothing of the others (scores_unit below).
    "scores.view": set(Role.ALL),
}

UNIT_ROLES = Role.UNIT_ROLES
OWNER_ACTIONS = ("part.receive", "part.start", "part.progress", "part.evidence", "part.submit",
                 "part.extend", "part.file", "milestone.propose")
LEAD_ACTIONS = ("part.verify", "part.return")
OFFICE_TASK_ACTIONS = ("task.close", "task.reopen", "task.urge", "task.edit")
# On a part, a round, an extension request: the office alone.
OFFICE_ACTIONS = ("part.remind", "milestone.set", "round.close", "extension.grant", "extension.refuse")
# The lead unit's leader decides on a unit's extension request or proposed milestone
# (obj: the ExtensionRequest or Milestone), never on their own.
LEAD_DECISIONS = {"extension.approve": "requested_by_id", "extension.decline": "requested_by_id",
                  "milestone.approve": "proposed_by_id", "milestone.refuse": "proposed_by_id"}

NOT_ALLOWED = "您没有执行此操作的权限。"
OWN_SUBMISSION = "这次材料是您本人提交的，按职责分离不能由您本人核验或退回。"
OWN_REQUEST = "这是您本人提出的申请，按职责分离不能由您本人审核。"

def _authenticated(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and user.is_active


def is_lead_unit(user, task) -> bool:
    return any(u.id == user.unit_id for u in task.lead_units)


def has_part(user, task) -> bool:
    return any(p.unit_id == user.unit_id for p in task.parts)


def task_of(part):
    """The part's task, without setting ``part.task``: on a page that loaded the
    task with its parts, the back-reference would close a Task ↔ TaskPart
    reference cycle that only the cyclic garbage collector frees, in whichever
    thread runs next (issue 7; tests/test_request_garbage.py)."""
    task = part.__dict__.get("task")
    if task is None and part.task_id is not None:
        task = db.session.get(Task, part.task_id)
    return task if task is not None else part.task


def part_of(obj):
    """The part of an extension request or a milestone, without setting
    ``obj.part``: on the task page, which loaded ``part.extensions`` and
    ``part.milestones``, it would close the same kind of cycle (see task_of)."""
    part = obj.__dict__.get("part")
    if part is None and obj.part_id is not None:
        part = db.session.get(TaskPart, obj.part_id)
    return part if part is not None else obj.part


def pending_submission(part):
    latest = part.submissions[-1] if part.submissions else None
    return latest if latest is not None and latest.outcome == SubmissionOutcome.PENDING else None


def office_may_verify_config() -> bool:
    return bool(current_app.config.get("OFFICE_VERIFY_FALLBACK", True)) if has_app_context() else True


def lead_leaders(task) -> list:
    """The active leaders of the task's lead units, once per request and task
    (the task page asks for every part)."""
    cache = g.setdefault("lead_leaders", {}) if has_app_context() else {}
    if task.id not in cache:
        # A query, not ``unit.users``: that collection and each user's ``unit``
        # would close a reference cycle (see task_of).
        cache[task.id] = db.session.scalars(_leaders_of_units(), {"units": [u.id for u in task.lead_units]}).all()
    return cache[task.id]


@functools.cache
def _leaders_of_units():
    return (select(User).where(User.unit_id.in_(bindparam("units", expanding=True)),
                               User.role == Role.UNIT_LEADER, User.active.is_(True)).order_by(User.id))


def verifiers(part) -> list:
    """The users who may decide on the part's pending submission: the active
    leaders of the task's lead units, except whoever handed it in."""
    submission = pending_submission(part)
    submitter = submission.submitted_by_id if submission is not None else None
    return [u for u in lead_leaders(task_of(part)) if u.id != submitter]


def office_verifies(part) -> bool:
    """The office decides in the lead unit's place when the lead unit has no
    one else to do it (its only leader handed the work in) and the office is
    configured to (OFFICE_VERIFY_FALLBACK)."""
    return (office_may_verify_config() and pending_submission(part) is not None
            and not verifiers(part))


def office_decides_for_lead(task, requester_id: int | None) -> bool:
    """As with verification: the office decides a lead unit's step on a request
    or proposal when the lead units have no active leader but its author
    (OFFICE_VERIFY_FALLBACK)."""
    return office_may_verify_config() and not [u for u in lead_leaders(task) if u.id != requester_id]


def denial(user, action: str, obj=None) -> str | None:
    """Why ``user`` may not do ``action`` on ``obj`` (Chinese), or None if they may."""
    if not _authenticated(user):
        return NOT_ALLOWED
    if action in PLAN_ACTIONS:
        return None if user.role in PLAN_ACTIONS[action] else NOT_ALLOWED
    if action == "task.view":
        if user.role in (Role.OFFICE_ADMIN, Role.OFFICE_STAFF, Role.VIEWER):
            return None
        ok = user.role in UNIT_ROLES and (is_lead_unit(user, obj) or has_part(user, obj))
        return None if ok else NOT_ALLOWED
    if action in OWNER_ACTIONS:
        return None if user.role in UNIT_ROLES and obj.unit_id == user.unit_id else NOT_ALLOWED
    if action in LEAD_ACTIONS:
        if user.role == Role.UNIT_LEADER and is_lead_unit(user, task_of(obj)):
            submission = pending_submission(obj)
            if submission is not None and submission.submitted_by_id == user.id:
                return OWN_SUBMISSION
            return None
        if user.is_office and office_verifies(obj):
            return None
        return NOT_ALLOWED
    if action in OFFICE_TASK_ACTIONS or action in OFFICE_ACTIONS:
        return None if user.is_office else NOT_ALLOWED
    if action in LEAD_DECISIONS:
        task = task_of(part_of(obj))
        if user.role == Role.UNIT_LEADER and is_lead_unit(user, task):
            return OWN_REQUEST if getattr(obj, LEAD_DECISIONS[action]) == user.id else None
        if user.is_office and office_decides_for_lead(task, getattr(obj, LEAD_DECISIONS[action])):
            return None
        return NOT_ALLOWED
    if action == "evidence.download":
        return denial(user, "task.view", task_of(obj.part))
    return NOT_ALLOWED


def scores_unit(user) -> int | None:
    """Whose line of the ranking ``user`` sees: None for every unit (the office,
    viewers), else their own unit's id."""
    return user.unit_id if user.role in UNIT_ROLES else None


def may(user, action: str, obj=None) -> bool:
    return denial(user, action, obj) is None


def can(user, action: str, obj) -> bool:
    """``may``, and the action is open in the object's current state."""
    return may(user, action, obj) and refusal(action, obj) is None
