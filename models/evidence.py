"""What units hand in: progress notes, submissions and their evidence."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db
from workflow.vocabulary import NotificationKind, SubmissionOutcome


class ProgressNote(db.Model):
    """进度填报: a note and a percentage."""
    __tablename__ = "progress_note"
    __table_args__ = (CheckConstraint("percent BETWEEN 0 AND 100", name="percent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    at: Mapped[datetime] = mapped_column(DateTime)
    percent: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)

    part = relationship("TaskPart", back_populates="progress_notes")
    user = relationship("User")


class Submission(db.Model):
    """One hand-in of a part: the completion statement, and the evidence added
    since the previous hand-in. Immutable once made, except for its outcome."""
    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("part_id", "number"),
        CheckConstraint(SubmissionOutcome.sql_check("outcome"), name="outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)          # 1, 2, … per part
    statement: Mapped[str] = mapped_column(Text)          # 完成情况说明
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(10), default=SubmissionOutcome.PENDING.value)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)   # the 退回 reason

    @property
    def outcome_label(self) -> str:
        return SubmissionOutcome.label_of(self.outcome)

    part = relationship("TaskPart", back_populates="submissions")
    submitted_by = relationship("User", foreign_keys=[submitted_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
    evidence: Mapped[list[Evidence]] = relationship(back_populates="submission", order_by="Evidence.id")


class Evidence(db.Model):
    """A file or a text. Pending (submission_id NULL) until the part is
    submitted; from then on it is part of that submission and never changes."""
    __tablename__ = "evidence"
    __table_args__ = (
        CheckConstraint("kind IN ('file', 'text')", name="kind"),
        CheckConstraint("(kind = 'file') = (content_sha256 IS NOT NULL)", name="file_has_content"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    text: Mapped[str | None] = mapped_column(Text)              # the text, or a file's description
    filename: Mapped[str | None] = mapped_column(String(255))   # original name, Chinese kept
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # where the bytes are stored
    size: Mapped[int | None] = mapped_column(BigInteger)
    mime: Mapped[str | None] = mapped_column(String(100))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime)
    # A resubmission may carry earlier evidence over: it gets a copy, pointing
    # at the item first handed in, so the earlier submission stays as it was.
    carried_from_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"))
    # A file handed in with a round's progress entry (still pending evidence of the part).
    progress_note_id: Mapped[int | None] = mapped_column(ForeignKey("progress_note.id"))

    part = relationship("TaskPart", back_populates="evidence")
    submission: Mapped[Submission | None] = relationship(back_populates="evidence")
    uploaded_by = relationship("User")

    carried_from = relationship("Evidence", remote_side=[id])

    @property
    def is_pending(self) -> bool:
        return self.submission_id is None


class Notification(db.Model):
    """In-app inbox, one row per recipient user."""
    __tablename__ = "notification"
    # Every page counts the signed-in user's unread messages: (user, read_at) answers it from the index.
    # 通知记录 filters by kind and by unread, newest first, and counts each: an index for each walk.
    __table_args__ = (
        Index("ix_notification_user_unread", "user_id", "read_at"),
        Index("ix_notification_kind", "kind", "id"),
        Index("ix_notification_unread", "id", sqlite_where=text("read_at IS NULL"),
              postgresql_where=text("read_at IS NULL")),
        Index("ix_notification_read", "id", sqlite_where=text("read_at IS NOT NULL"),
              postgresql_where=text("read_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    # A NotificationKind. No CHECK constraint: kinds are added with new features, and a
    # kind missing from a constraint would turn a state change into a database error.
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)

    user = relationship("User")
    task = relationship("Task")

    @property
    def kind_label(self) -> str:
        return NotificationKind.label_of(self.kind)
