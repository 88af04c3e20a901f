"""The office's rhythm: progress rounds (调度), extension requests (延期申请) and
planned-progress milestones (序时进度节点)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db
from workflow.vocabulary import ExtensionState, MilestoneState, RoundKind, RoundState


class ProgressRound(db.Model):
    """调度: the office asks every open part in scope for a progress entry by a date."""
    __tablename__ = "progress_round"
    __table_args__ = (
        CheckConstraint(RoundKind.sql_check("kind"), name="kind"),
        CheckConstraint(RoundState.sql_check("state"), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default=RoundKind.MONTHLY.value)
    title: Mapped[str] = mapped_column(String(200))           # "2022年6月调度"
    instructions: Mapped[str | None] = mapped_column(Text)    # "每月5日前报送上月进展"
    # What the round covers, as chosen when it was opened (shown on its page and in its 通报).
    scope: Mapped[str] = mapped_column(String(300), default="")
    due_on: Mapped[date] = mapped_column(Date)                # filing deadline (China Standard Time)
    state: Mapped[str] = mapped_column(String(10), default=RoundState.OPEN.value, index=True)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The 调度通报 generated when the round closed.
    report_id: Mapped[int | None] = mapped_column(ForeignKey("report_archive.id"))
    # Opened by a RoundSchedule: "schedule:<id>:<period>", unique, so the sweep opens each once.
    schedule_key: Mapped[str | None] = mapped_column(String(60), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    plan = relationship("Plan")
    opened_by = relationship("User", foreign_keys=[opened_by_id])
    closed_by = relationship("User", foreign_keys=[closed_by_id])
    report = relationship("ReportArchive")
    entries: Mapped[list[RoundPart]] = relationship(
        back_populates="round", order_by="RoundPart.id", cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}

    @property
    def kind_label(self) -> str:
        return RoundKind.label_of(self.kind)

    @property
    def state_label(self) -> str:
        return RoundState.label_of(self.state)


class RoundPart(db.Model):
    """One part a round asks to file, fixed when the round opens, and its filing."""
    __tablename__ = "round_part"
    __table_args__ = (UniqueConstraint("round_id", "part_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("progress_round.id", ondelete="CASCADE"), index=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    # The progress entry filed for the round (NULL: not filed yet).
    note_id: Mapped[int | None] = mapped_column(ForeignKey("progress_note.id"))
    filed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Filed after the round's due date (China Standard Time).
    late: Mapped[bool] = mapped_column(default=False)

    round: Mapped[ProgressRound] = relationship(back_populates="entries")
    part = relationship("TaskPart")
    note = relationship("ProgressNote")


class ExtensionRequest(db.Model):
    """延期申请 of one part: asked by its unit, decided by the lead unit's leader, then the office."""
    __tablename__ = "extension_request"
    __table_args__ = (CheckConstraint(ExtensionState.sql_check("state"), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20), default=ExtensionState.PENDING_LEAD.value, index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    old_deadline: Mapped[date] = mapped_column(Date)          # the part's deadline when asked
    new_deadline: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(Integer)            # the part's progress when asked
    late: Mapped[bool] = mapped_column(default=False)         # asked after the deadline (office allowed it)
    lead_decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    lead_decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    lead_reason: Mapped[str | None] = mapped_column(Text)
    office_decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    office_decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    office_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)

    part = relationship("TaskPart", back_populates="extensions")
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    lead_decided_by = relationship("User", foreign_keys=[lead_decided_by_id])
    office_decided_by = relationship("User", foreign_keys=[office_decided_by_id])

    __mapper_args__ = {"version_id_col": version}

    @property
    def state_label(self) -> str:
        return ExtensionState.label_of(self.state)

    @property
    def is_pending(self) -> bool:
        return self.state in ExtensionState.pending()

    @property
    def decided_at(self) -> datetime | None:
        """When the request was finally decided (granted, or refused at either step)."""
        if self.is_pending:
            return None
        return self.office_decided_at or self.lead_decided_at


class Milestone(db.Model):
    """A point of a part's planned-progress line: by ``on``, ``percent`` done."""
    __tablename__ = "milestone"
    __table_args__ = (
        CheckConstraint("percent BETWEEN 1 AND 100", name="percent"),
        CheckConstraint(MilestoneState.sql_check("state"), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    on: Mapped[date] = mapped_column(Date)
    percent: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(10), default=MilestoneState.APPROVED.value)
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    proposed_at: Mapped[datetime] = mapped_column(DateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)

    part = relationship("TaskPart", back_populates="milestones")
    proposed_by = relationship("User", foreign_keys=[proposed_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def state_label(self) -> str:
        return MilestoneState.label_of(self.state)
