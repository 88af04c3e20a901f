"""Notices: the one way anything tells a person something.

``send(users, kind, message, task)`` writes one inbox row per user and, in the
same transaction, one Delivery per outside channel the user chose: an e-mail
to the user's address, and one post per unit to the unit's group robot. The
worker sends the deliveries once the transaction commits
(workflow/notices/delivery.py), with retries, backoff and quiet hours; a
channel that fails never fails the action that caused the notice.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from contextvars import ContextVar

from flask import current_app

from models import Delivery, Notification, Unit, User
from workflow import background
from workflow.extensions import db
from workflow.timeutil import utcnow
from workflow.vocabulary import Channel, NotificationKind, RobotKind

from .quiet import release_time

PUMP = "notice.pump"
# Off while the demo plays its history: those notices were "sent" in 2022.
_outside_off: ContextVar[bool] = ContextVar("luoshi_notices_outside_off", default=False)
# Set while the reminder sweep runs: its deliveries are pumped once, when it is done.
_pump_held: ContextVar[bool] = ContextVar("luoshi_notices_pump_held", default=False)


@contextmanager
def pump_held():
    """Inside the block, deliveries are written but no pump is queued for them."""
    token = _pump_held.set(True)
    try:
        yield
    finally:
        _pump_held.reset(token)


@contextmanager
def inbox_only():
    """Inside the block, notices go to the inbox alone (the demo's played history)."""
    token = _outside_off.set(True)
    try:
        yield
    finally:
        _outside_off.reset(token)


def mail_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


def robot_configured(unit: Unit | None) -> bool:
    return bool(unit is not None and unit.robot_url and unit.robot_kind in RobotKind.values())


def send(users: Iterable[User], kind: NotificationKind | str, message: str | Callable[[User], str],
         task=None, *, task_id: int | None = None) -> list[Notification]:
    """One inbox row per active user (``message`` may depend on the user) and
    their outside deliveries; flushes, never commits. The deliveries are queued
    once the caller commits."""
    users = [u for u in dict.fromkeys(users) if u is not None and u.active]
    if not users:
        return []
    now = utcnow()
    task_id = task.id if task is not None else task_id
    rows = []
    for user in users:
        text = message(user) if callable(message) else message
        rows.append(Notification(user_id=user.id, task_id=task_id, kind=str(kind), message=text, created_at=now))
    db.session.add_all(rows)
    db.session.flush()
    if _outside_off.get():
        return rows
    at = release_time(now)
    deliveries = _deliveries(users, rows, now, at)
    if deliveries:
        db.session.add_all(deliveries)
        db.session.flush()
        # One pump per batch of notices, not one message per delivery: the pump
        # takes every due delivery in turn (several workers share them). In
        # quiet hours it is queued for their end.
        if not _pump_held.get():
            background.enqueue_after_commit(PUMP, at=at if at > now else None)
    return rows


def _deliveries(users: list[User], rows: list[Notification], now, at) -> list[Delivery]:
    out = []
    mail = mail_configured()
    robot_rows: dict[int, Notification] = {}
    for user, row in zip(users, rows):
        if mail and user.notify_email and user.email:
            out.append(Delivery(notification_id=row.id, channel=Channel.EMAIL.value, user_id=user.id,
                                address=user.email, next_attempt_at=at, created_at=now))
        if user.notify_robot and user.unit_id not in robot_rows:
            robot_rows[user.unit_id] = row
    if robot_rows:
        units = {u.id: u for u in db.session.scalars(db.select(Unit).where(Unit.id.in_(list(robot_rows))))}
        for unit_id, row in robot_rows.items():
            unit = units.get(unit_id)
            if robot_configured(unit):
                out.append(Delivery(notification_id=row.id, channel=Channel.ROBOT.value, unit_id=unit_id,
                                    address=f"{unit.name}（{RobotKind.label_of(unit.robot_kind)}）",
                                    next_attempt_at=at, created_at=now))
    return out


def unit_users(units, roles=None, exclude_user=None) -> list[User]:
    """The active users of the units (optionally only some roles), by id."""
    unit_ids = list(dict.fromkeys(u.id for u in units if u is not None))
    if not unit_ids:
        return []
    query = db.select(User).where(User.unit_id.in_(unit_ids), User.active.is_(True)).order_by(User.id)
    if roles:
        query = query.where(User.role.in_(roles))
    return [u for u in db.session.scalars(query) if exclude_user is None or u.id != exclude_user.id]


def update_settings(user, *, email: str | None, notify_email: bool, notify_robot: bool) -> bool:
    """A user's own channels (the settings page); whether anything changed. Flushes."""
    from workflow import audit

    email = (email or "").strip() or None
    old = (user.email, user.notify_email, user.notify_robot)
    user.email, user.notify_email, user.notify_robot = email, bool(notify_email), bool(notify_robot)
    if (user.email, user.notify_email, user.notify_robot) == old:
        return False
    audit.append("notice_settings_changed", user=user,
                 details={"email": bool(email), "notify_email": user.notify_email, "notify_robot": user.notify_robot})
    db.session.flush()
    return True
