"""Notices beyond the inbox: one Delivery per notice and outside channel, and
the worker's pulse (workflow/background.py, workflow/notices/)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db
from workflow.vocabulary import Channel, DeliveryStatus, sql_in


class Delivery(db.Model):
    """A notice on its way through e-mail or a group robot: the outbox row the
    worker claims, sends, retries, and the delivery log reads."""
    __tablename__ = "delivery"
    __table_args__ = (
        # One e-mail per notice and recipient; one robot post per notice and unit.
        UniqueConstraint("notification_id", "channel"),
        # 通知记录 filtered by status walks the deliveries of that status newest notice first (and the
        # worker finds the pending ones by its prefix).
        Index("ix_delivery_status_notification", "status", "notification_id"),
        CheckConstraint(sql_in("channel", Channel.outside()), name="channel"),
        CheckConstraint(DeliveryStatus.sql_check("status"), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id", ondelete="SET NULL"))
    # Where it went, as the log shows it: the address, or "单位名（企业微信）" (never a robot's key).
    address: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not before this moment (retries back off; quiet hours hold outside notices).
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # A worker's claim while sending; past it, the claim is a dead worker's.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str | None] = mapped_column(String(120))
    last_error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(String(500))   # the server's answer
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    notification = relationship("Notification")
    user = relationship("User")
    unit = relationship("Unit")

    @property
    def channel_label(self) -> str:
        return Channel.label_of(self.channel)

    @property
    def status_label(self) -> str:
        return DeliveryStatus.label_of(self.status)


class WorkerBeat(db.Model):
    """A running worker's pulse (its heartbeat thread renews ``seen_at``)."""
    __tablename__ = "worker_beat"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)   # host:pid
    started_at: Mapped[datetime] = mapped_column(DateTime)
    seen_at: Mapped[datetime] = mapped_column(DateTime)
