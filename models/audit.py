"""The append-only, hash-chained audit trail."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db


class AuditEntry(db.Model):
    __tablename__ = "audit_entry"
    # The log's filters and the task's timeline read their entries in chain order: each index ends
    # in seq, so a page walks it from the newest match and stops at the page, where an index on the
    # column alone finds every match and sorts them (a filter by 签收 at 100,000 tasks: 128k
    # entries sorted for each page, 1 s on SQLite).
    __table_args__ = (
        Index("ix_audit_entry_action_seq", "action", "seq"),
        Index("ix_audit_entry_unit_seq", "unit_id", "seq"),
        Index("ix_audit_entry_username_seq", "username", "seq"),
        Index("ix_audit_entry_task_seq", "task_id", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Position in the chain; unique so that two writers can never fork it.
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    username: Mapped[str | None] = mapped_column(String(64))   # kept even if the user is renamed
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id"))
    part_id: Mapped[int | None] = mapped_column(ForeignKey("task_part.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    user = relationship("User", foreign_keys=[user_id])
    unit = relationship("Unit", foreign_keys=[unit_id])
    task = relationship("Task", foreign_keys=[task_id])


class AuditHead(db.Model):
    """One row: the chain's last seq and hash. Writers lock it (FOR UPDATE on
    PostgreSQL; SQLite has one writer at a time anyway) so appends serialise."""
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    # The hash of the newest entry about no single task (a user, a unit, a plan, a round, a restore),
    # sign-ins and reports aside (audit.NOT_SHOWN_ON_PAGES); None until there is one. With a task's
    # own newest entry it says whether a kept task page still holds (head_cache.task_stamp).
    general_hash: Mapped[str | None] = mapped_column(String(64))
