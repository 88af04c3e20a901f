"""Work that acts on its own: the office's reminder rules, each reminder sent
(once), the daily sweep that sends them, 督办 raised after repeated reminders,
and progress rounds opened on a schedule (workflow/reminders.py)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db
from workflow.vocabulary import EscalationState, JobStatus, ReminderKind, RoundKind


class ReminderRule(db.Model):
    """The office's rule for one kind of reminder (one row per ReminderKind)."""
    __tablename__ = "reminder_rule"
    __table_args__ = (CheckConstraint(ReminderKind.sql_check("kind"), name="kind"),)

    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    days_before: Mapped[str] = mapped_column(String(50), default="")   # "7,3,1"
    on_due: Mapped[bool] = mapped_column(Boolean, default=True)
    repeat_days: Mapped[int] = mapped_column(Integer, default=0)        # every M days after; 0: never
    escalate_after: Mapped[int] = mapped_column(Integer, default=0)     # K reminders on or after the date; 0: never
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    updated_by = relationship("User")

    __mapper_args__ = {"version_id_col": version}

    @property
    def before(self) -> list[int]:
        return sorted({int(d) for d in self.days_before.split(",") if d.strip().isdigit() and int(d) > 0},
                      reverse=True)

    @property
    def kind_label(self) -> str:
        return ReminderKind.label_of(self.kind)


class SweepRun(db.Model):
    """One day's reminder sweep: claimed by one worker, renewed by its
    heartbeat, run again by the watchdog if that worker died."""
    __tablename__ = "sweep_run"
    __table_args__ = (CheckConstraint(JobStatus.sql_check("status"), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[date] = mapped_column(Date, unique=True)
    status: Mapped[str] = mapped_column(String(10), default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(120))
    requested_by: Mapped[str] = mapped_column(String(64))     # "scheduler", "cli", a username
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    checked: Mapped[int] = mapped_column(Integer, default=0)       # parts and filings looked at
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    rounds_opened: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def status_label(self) -> str:
        return JobStatus.label_of(self.status)


class Reminder(db.Model):
    """One reminder occasion, sent once: the unique ``key`` names the rule, the
    part (or round filing), the date it watches and the occasion, so a sweep
    run twice, or by two workers, sends it once."""
    __tablename__ = "reminder"
    __table_args__ = (CheckConstraint(ReminderKind.sql_check("kind"), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    round_part_id: Mapped[int | None] = mapped_column(ForeignKey("round_part.id", ondelete="CASCADE"))
    target_on: Mapped[date] = mapped_column(Date)          # the deadline, receipt or filing date watched
    occasion: Mapped[str] = mapped_column(String(20))     # before-3 · due · after-2 (the 2nd after the date)
    sent_on: Mapped[date] = mapped_column(Date)            # the sweep's day
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweep_run.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    part = relationship("TaskPart")


class Escalation(db.Model):
    """督办: a part reminded ``reminders`` times on or after its date without
    effect, raised to its unit's leaders and listed for the office; a 通报 names it."""
    __tablename__ = "escalation"
    __table_args__ = (
        CheckConstraint(ReminderKind.sql_check("kind"), name="kind"),
        CheckConstraint(EscalationState.sql_check("state"), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)   # kind:part:target (one per date watched)
    kind: Mapped[str] = mapped_column(String(12))
    part_id: Mapped[int] = mapped_column(ForeignKey("task_part.id", ondelete="CASCADE"), index=True)
    round_part_id: Mapped[int | None] = mapped_column(ForeignKey("round_part.id", ondelete="CASCADE"))
    target_on: Mapped[date] = mapped_column(Date)
    reminders: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default=EscalationState.OPEN.value, index=True)
    reason: Mapped[str] = mapped_column(String(300))
    raised_at: Mapped[datetime] = mapped_column(DateTime)
    raised_on: Mapped[date] = mapped_column(Date)
    bulletin_report_id: Mapped[int | None] = mapped_column(ForeignKey("report_archive.id", ondelete="SET NULL"))
    bulletin_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_reason: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)

    part = relationship("TaskPart")

    __mapper_args__ = {"version_id_col": version}

    @property
    def kind_label(self) -> str:
        return ReminderKind.label_of(self.kind)

    @property
    def state_label(self) -> str:
        return EscalationState.label_of(self.state)


class RoundSchedule(db.Model):
    """A progress round the sweep opens by itself: monthly on a day of the
    month, or weekly on a weekday, over the whole plan."""
    __tablename__ = "round_schedule"
    __table_args__ = (CheckConstraint("kind IN ('monthly', 'weekly')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default=RoundKind.MONTHLY.value)
    day: Mapped[int] = mapped_column(Integer)            # monthly: 1–28; weekly: 1 (Monday) – 7
    due_days: Mapped[int] = mapped_column(Integer)       # filings due this many days after opening
    instructions: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    plan = relationship("Plan")
    created_by = relationship("User")

    @property
    def kind_label(self) -> str:
        return RoundKind.label_of(self.kind)
