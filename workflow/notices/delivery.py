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
from datetime import datetime, timedelta

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
    """Send due deliveries until none is left (or ``limit`` sent); how many tried.
    A pump that leaves retries behind queues itself again for when they are due."""
    tried = 0
    retries: set[datetime] = set()
    while limit is None or tried < limit:
        token, claimed = claim(BATCH if limit is None else min(BATCH, limit - tried))
        if not claimed:
            break
        for delivery_id in claimed:
            retry_at = deliver(delivery_id, token)
            if retry_at is not None:
                # To the second: a batch of failures is one message per backoff step, not one each.
                retries.add(retry_at.replace(microsecond=0) + timedelta(seconds=1))
            tried += 1
    for moment in sorted(retries):
        background.enqueue(PUMP, at=moment)
    return tried


def _lease() -> timedelta:
    return timedelta(seconds=int(current_app.config.get("NOTICE_LEASE_SECONDS", 120)))


def claim(n: int) -> tuple[str, list[int]]:
    """Up to ``n`` due deliveries for this pump: (its claim token, their ids)."""
    token = f"{background.worker_name()}:{uuid.uuid4().hex[:8]}"
    now = utcnow()
    due = (select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
           .order_by(Delivery.next_attempt_at, Delivery.id).limit(n))
    if db.session.get_bind().dialect.name == "postgresql":
        # A CTE, run once: as "id IN (subquery … SKIP LOCKED)" PostgreSQL may scan
        # the subquery again for each row, skip the rows this very UPDATE just
        # locked, and so claim far more than n.
        due = due.with_for_update(skip_locked=True).cte("due")
        which = Delivery.id == due.c.id
    else:
        which = Delivery.id.in_(due.scalar_subquery())
    write_transactions(True)
    try:
        db.session.execute(update(Delivery).where(which, Delivery.status == DeliveryStatus.PENDING)
                           .values(status=DeliveryStatus.SENDING, worker=token, lease_until=now + _lease()),
                           execution_options={"synchronize_session": False})
        ids = db.session.scalars(select(Delivery.id).where(Delivery.worker == token,
                                                           Delivery.status == DeliveryStatus.SENDING)
                                 .order_by(Delivery.id)).all()
        db.session.commit()
    finally:
        write_transactions(False)
    return token, list(ids)


def _load(delivery_id: int) -> Delivery | None:
    return db.session.get(Delivery, delivery_id, populate_existing=True, options=[
        joinedload(Delivery.notification).joinedload(Notification.task).joinedload(Task.item)])


def _ours(delivery: Delivery | None, token: str | None) -> bool:
    return (delivery is not None and delivery.status == DeliveryStatus.SENDING
            and (token is None or delivery.worker == token))


def _renew(delivery_id: int, token: str | None) -> bool:
    """Stretch the lease before a send: the batch's lease was taken for all of
    it, and slow servers before this one may have used most of it up."""
    write_transactions(True)
    try:
        query = update(Delivery).where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
        if token is not None:
            query = query.where(Delivery.worker == token)
        renewed = db.session.execute(query.values(lease_until=utcnow() + _lease()),
                                     execution_options={"synchronize_session": False}).rowcount
        db.session.commit()
    finally:
        write_transactions(False)
    return renewed == 1


def deliver(delivery_id: int, token: str | None = None) -> datetime | None:
    """Send one delivery this pump claimed (``token``; None: whoever holds it)
    and record the outcome (commits). Returns when it is to be tried again, if
    it is. A delivery the watchdog has since given to another pump (its lease
    ran out) is left to that one."""
    delivery = _load(delivery_id)
    if not _ours(delivery, token):
        db.session.rollback()
        return None
    if delivery.lease_until is None or delivery.lease_until - utcnow() < _lease() / 2:
        db.session.rollback()
        if not _renew(delivery_id, token):
            return None
        delivery = _load(delivery_id)
    try:
        answer = _send(delivery)
        error = None
    except channels.ChannelError as exc:
        answer, error = None, exc.message
    except Exception as exc:  # a bug in one message must not stop the pump
        log.exception("delivery %s crashed", delivery_id)
        answer, error = None, f"发送时出错：{type(exc).__name__}"
    db.session.rollback()   # nothing of the read transaction is kept across the send
    return _record(delivery_id, token, answer, error)


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


def _record(delivery_id: int, token: str | None, answer: str | None, error: str | None) -> datetime | None:
    """The outcome of one try; the moment of the next, if there is one."""
    write_transactions(True)
    try:
        delivery = db.session.get(Delivery, delivery_id, populate_existing=True)
        now = utcnow()
        retry_at = None
        if delivery is None or delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
            db.session.rollback()
            return None
        if error is None:
            # Sent is sent, even if the watchdog had meanwhile released the row: so
            # that a pump that takes it next does not send it again.
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = now
            delivery.response = (answer or "")[:500]
            delivery.last_error = None
        elif not _ours(delivery, token):
            log.warning("delivery %s failed after its claim ran out: %s", delivery_id, error)
            db.session.rollback()
            return None
        else:
            delivery.last_error = error
            if delivery.attempts + 1 >= int(current_app.config.get("NOTICE_ATTEMPTS", 5)):
                delivery.status = DeliveryStatus.FAILED
            else:
                delivery.status = DeliveryStatus.PENDING
                wait = backoff_seconds(delivery.attempts + 1)
                retry_at = delivery.next_attempt_at = release_time(now + timedelta(seconds=wait))
        delivery.attempts += 1
        delivery.lease_until = None
        db.session.commit()
        return retry_at
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
