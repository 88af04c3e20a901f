"""Sending the outbox: the pump claims due deliveries a few at a time, sends
each, and records the answer (sent), or the reason and the next try (backoff),
or, after NOTICE_ATTEMPTS tries, the failure. Every outcome is committed on
its own, right after the send, so that a worker killed mid-pump leaves at most
the one delivery it was sending in doubt; the lease on it runs out and it is
sent again, under the same Message-ID (docs/background.md, "At least once").

Several workers pump at once: a claim is one UPDATE of rows still pending
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer), stamped
with a token of the claim, so no delivery is claimed twice.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from models import Delivery, Notification, Task, Unit, User
from workflow import background
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.timeutil import utcnow
from workflow.vocabulary import Channel, DeliveryStatus

from . import PUMP, channels
from .quiet import release_time

log = logging.getLogger(__name__)

BATCH = 10
# Seconds before try n+1 (n = tries so far); the last repeats.
BACKOFF = (30, 120, 600, 1800, 3600)


def backoff_seconds(attempts: int) -> int:
    schedule = current_app.config.get("NOTICE_BACKOFF") or BACKOFF
    return int(schedule[min(max(attempts, 1), len(schedule)) - 1])


def message_id(delivery: Delivery) -> str:
    """The same on every try of one delivery, and not guessable from outside."""
    salt = hashlib.sha256(f"{current_app.config['SECRET_KEY']}:{delivery.id}".encode()).hexdigest()[:12]
    domain = (current_app.config.get("MAIL_FROM") or "luoshi@localhost").rpartition("@")[2] or "localhost"
    return f"<luoshi.{delivery.id}.{salt}@{domain}>"


@background.job(PUMP)
def pump(limit: int | None = None) -> int:
    """Send due deliveries until none is left (or ``limit`` sent); how many tried."""
    tried = 0
    while limit is None or tried < limit:
        claimed = claim(BATCH if limit is None else min(BATCH, limit - tried))
        if not claimed:
            break
        for delivery_id in claimed:
            deliver(delivery_id)
            tried += 1
    return tried


def claim(n: int) -> list[int]:
    token = f"{background.worker_name()}:{uuid.uuid4().hex[:8]}"
    now = utcnow()
    lease = now + timedelta(seconds=int(current_app.config.get("NOTICE_LEASE_SECONDS", 120)))
    due = (select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
           .order_by(Delivery.next_attempt_at, Delivery.id).limit(n))
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    write_transactions(True)
    try:
        db.session.execute(update(Delivery).where(Delivery.id.in_(due.scalar_subquery()),
                                                  Delivery.status == DeliveryStatus.PENDING)
                           .values(status=DeliveryStatus.SENDING, worker=token, lease_until=lease),
                           execution_options={"synchronize_session": False})
        ids = db.session.scalars(select(Delivery.id).where(Delivery.worker == token,
                                                           Delivery.status == DeliveryStatus.SENDING)
                                 .order_by(Delivery.id)).all()
        db.session.commit()
    finally:
        write_transactions(False)
    return list(ids)


def deliver(delivery_id: int) -> None:
    """Send one claimed delivery and record the outcome (commits)."""
    delivery = db.session.get(Delivery, delivery_id, options=[
        joinedload(Delivery.notification).joinedload(Notification.task).joinedload(Task.item)])
    if delivery is None or delivery.status != DeliveryStatus.SENDING:
        db.session.rollback()
        return
    try:
        answer = _send(delivery)
        error = None
    except channels.ChannelError as exc:
        answer, error = None, exc.message
    except Exception as exc:  # a bug in one message must not stop the pump
        log.exception("delivery %s crashed", delivery_id)
        answer, error = None, f"发送时出错：{type(exc).__name__}"
    db.session.rollback()   # nothing of the read transaction is kept across the send
    _record(delivery_id, answer, error)


def _send(delivery: Delivery) -> str:
    notification = delivery.notification
    if delivery.channel == Channel.EMAIL:
        user = db.session.get(User, delivery.user_id) if delivery.user_id else None
        content = channels.content_of(notification, user.display_name if user else "")
        return channels.send_email(channels.build_email(content, delivery.address, message_id(delivery)))
    unit = db.session.get(Unit, delivery.unit_id) if delivery.unit_id else None
    if unit is None or not unit.robot_url:
        raise channels.ChannelError("该单位已不再配置工作群机器人。")
    content = channels.content_of(notification, unit.name)
    return channels.send_robot(unit.robot_kind, unit.robot_url, unit.robot_secret,
                               channels.robot_payload(unit.robot_kind, content, delivery.id))


def _record(delivery_id: int, answer: str | None, error: str | None) -> None:
    write_transactions(True)
    try:
        delivery = db.session.get(Delivery, delivery_id)
        now = utcnow()
        delivery.attempts += 1
        delivery.lease_until = None
        if error is None:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = now
            delivery.response = (answer or "")[:500]
            delivery.last_error = None
        else:
            delivery.last_error = error
            if delivery.attempts >= int(current_app.config.get("NOTICE_ATTEMPTS", 5)):
                delivery.status = DeliveryStatus.FAILED
            else:
                delivery.status = DeliveryStatus.PENDING
                wait = backoff_seconds(delivery.attempts)
                delivery.next_attempt_at = release_time(now + timedelta(seconds=wait))
                background.enqueue_after_commit(PUMP, delay=wait)
        db.session.commit()
    finally:
        write_transactions(False)


@background.every_minute("notice.watchdog")
def watchdog() -> dict[str, int]:
    """Deliveries a dead worker held (lease run out, or its process gone from
    this host) go back to pending; if any delivery is then due, or overdue by
    a minute (its pump message lost, quiet hours over), pump."""
    now = utcnow()
    released = 0
    for row in db.session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.SENDING)):
        if row.lease_until is None or row.lease_until < now or background.is_dead(row.worker):
            row.status = DeliveryStatus.PENDING
            row.worker = None
            row.lease_until = None
            released += 1
    late = db.session.scalar(select(func.count(Delivery.id)).where(
        Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now - timedelta(seconds=60)))
    if released or late:
        background.enqueue_after_commit(PUMP)
    return {"released": released, "late": late or 0}
