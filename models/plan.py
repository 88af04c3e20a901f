"""Plans: a compilation, its chapters, policy items, tasks and the parts units do."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON, Boolean, CheckConstraint, Column, Date, DateTime, ForeignKey, Index, Integer, String, Table, Text,
    UniqueConstraint, case,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow import due
from workflow.extensions import db
from workflow.importer.draft import UNNAMED_CHAPTER
from workflow.vocabulary import PART_STATES, ClauseSource, DocumentShape, TaskKind, TaskState, sql_in

from .org import Section, Unit
from .utc import created_at_column


item_owner_units = Table(
    "item_owner_unit", db.metadata,
    Column("item_id", ForeignKey("item.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("unit.id"), primary_key=True, index=True),
    Column("position", Integer, nullable=False, default=0),
)

task_lead_units = Table(
    "task_lead_unit", db.metadata,
    Column("task_id", ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("unit.id"), primary_key=True, index=True),
    Column("position", Integer, nullable=False, default=0),
)

task_responsible_units = Table(
    "task_responsible_unit", db.metadata,
    Column("task_id", ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("unit.id"), primary_key=True, index=True),
    Column("position", Integer, nullable=False, default=0),
)

task_sections = Table(
    "task_section", db.metadata,
    Column("task_id", ForeignKey("task.id", ondelete="CASCADE"), primary_key=True),
    Column("section_id", ForeignKey("section.id"), primary_key=True, index=True),
    Column("position", Integer, nullable=False, default=0),
)


class Plan(db.Model):
    """One imported document: a compilation (实施方案汇编), a task list or a task table."""
    __tablename__ = "plan"
    __table_args__ = (CheckConstraint(DocumentShape.sql_check("shape"), name="shape"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    issuer: Mapped[str | None] = mapped_column(String(200))
    issued_on: Mapped[date | None] = mapped_column(Date)
    batch: Mapped[str | None] = mapped_column(String(50))
    source_filename: Mapped[str] = mapped_column(String(255))
    # The same file imported twice is recognised by its hash and not duplicated.
    source_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    preamble: Mapped[str | None] = mapped_column(Text)
    #: Which shape of the genre family the importer read it as.
    shape: Mapped[str] = mapped_column(String(20), default=DocumentShape.COMPILATION.value)
    imported_at: Mapped[datetime] = created_at_column()
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))

    chapters: Mapped[list[Chapter]] = relationship(
        back_populates="plan", order_by="Chapter.number", cascade="all, delete-orphan")
    items: Mapped[list[Item]] = relationship(
        back_populates="plan", order_by="Item.position", cascade="all, delete-orphan")


class Chapter(db.Model):
    __tablename__ = "chapter"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))

    plan: Mapped[Plan] = relationship(back_populates="chapters")
    items: Mapped[list[Item]] = relationship(back_populates="chapter", order_by="Item.position")

    def heading(self, numeral=str) -> str:
        return chapter_heading(self.number, self.title, numeral)


def chapter_heading(number: int, title: str, numeral=str) -> str:
    """"3、培育壮大有效需求"; the chapter the importer made for items before any
    heading has a number only for ordering, and is shown by its title alone."""
    return title if title == UNNAMED_CHAPTER else f"{numeral(number)}、{title}"


class Item(db.Model):
    """A policy item (第N项) or sub-item (19-1)."""
    __tablename__ = "item"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plan.id", ondelete="CASCADE"), index=True)
    chapter_id: Mapped[int] = mapped_column(ForeignKey("chapter.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20))        # "19-1"
    position: Mapped[int] = mapped_column(Integer)          # order in the document
    subtitle: Mapped[str | None] = mapped_column(String(200))
    policy_text: Mapped[str] = mapped_column(Text, default="")   # 政策原文
    goal: Mapped[str | None] = mapped_column(Text)               # 落实目标
    explanation: Mapped[str | None] = mapped_column(Text)        # 情况说明 (not applicable)
    applicable: Mapped[bool] = mapped_column(Boolean, default=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)

    plan: Mapped[Plan] = relationship(back_populates="items")
    chapter: Mapped[Chapter] = relationship(back_populates="items")
    parent: Mapped[Item | None] = relationship(remote_side="Item.id", back_populates="children")
    children: Mapped[list[Item]] = relationship(back_populates="parent", order_by="Item.position")
    owner_units: Mapped[list[Unit]] = relationship(
        secondary=item_owner_units, order_by=item_owner_units.c.position)
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="item", order_by="Contact.position", cascade="all, delete-orphan")
    tasks: Mapped[list[Task]] = relationship(
        back_populates="item", order_by=lambda: Task.order_in_item(), cascade="all, delete-orphan")

    @property
    def label(self) -> str:
        return f"第{self.number}项"


# The task list's order (queries.task_order: the newest plan first, then document order), walked
# under LIMIT: the first page of 100k tasks reads its 30 rows, not every task to sort them.
Index("ix_item_plan_position", Item.plan_id.desc(), Item.position)


class Contact(db.Model):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(50))

    item: Mapped[Item] = relationship(back_populates="contacts")


class Task(db.Model):
    """One entry of 工作任务 or 保障措施."""
    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("item_id", "kind", "seq"),
        CheckConstraint(TaskKind.sql_check("kind"), name="kind"),
        # A long-term task has no date; a dated task is not long-term.
        CheckConstraint("NOT (long_term AND deadline IS NOT NULL)", name="long_term_no_date"),
        CheckConstraint(TaskState.sql_check("state"), name="state"),
        CheckConstraint(ClauseSource.sql_check("clause_source"), name="clause_source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    deadline: Mapped[date | None] = mapped_column(Date, index=True)
    # As the plan first set it: reports show 原定时限 beside the deadline in force.
    deadline_original: Mapped[date | None] = mapped_column(Date)
    deadline_text: Mapped[str | None] = mapped_column(String(100))
    long_term: Mapped[bool] = mapped_column(Boolean, default=False)
    clause_source: Mapped[str] = mapped_column(String(10), default=ClauseSource.OWN.value)
    source_lines: Mapped[list[int]] = mapped_column(JSON, default=list)
    #: People named as 牵头领导 (a person, not a unit), as written.
    leaders: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Addressees that name no unit in particular (各有关单位), as written.
    addressees: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)          # a table's 备注
    # Defaults are plain values, not members: transitions reads an Enum state by its name.
    state: Mapped[str] = mapped_column(String(20), default=TaskState.PLANNED.value, index=True)
    # Optimistic concurrency: every state change is "UPDATE … WHERE version = :seen".
    version: Mapped[int] = mapped_column(Integer, default=1)

    item: Mapped[Item] = relationship(back_populates="tasks")
    lead_units: Mapped[list[Unit]] = relationship(
        secondary=task_lead_units, order_by=task_lead_units.c.position)
    responsible_units: Mapped[list[Unit]] = relationship(
        secondary=task_responsible_units, order_by=task_responsible_units.c.position)
    sections: Mapped[list[Section]] = relationship(
        secondary=task_sections, order_by=task_sections.c.position)
    parts: Mapped[list[TaskPart]] = relationship(
        back_populates="task", order_by="TaskPart.position", cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}

    # Document order — the item's position, 工作任务 before 保障措施, the number — is defined
    # here once: as SQL (the caller joins Item) and as a sort key for tasks already loaded.
    @classmethod
    def order_in_item(cls) -> tuple:
        rank = case({k.value: k.rank for k in TaskKind}, value=cls.kind, else_=len(TaskKind))
        return (rank, cls.seq)

    @classmethod
    def document_order(cls) -> tuple:
        return (Item.position, *cls.order_in_item())

    @property
    def document_key(self) -> tuple:
        return (self.item.position, TaskKind(self.kind).rank, self.seq)

    @property
    def number_label(self) -> str:
        return f"{self.item.number}-{TaskKind(self.kind).short}{self.seq}"

    @property
    def kind_label(self) -> str:
        return TaskKind.label_of(self.kind)

    @property
    def deadline_shown(self) -> str:
        return due.deadline_shown(self)

    @property
    def label(self) -> str:
        return f"第{self.item.number}项 {self.kind_label}{self.seq}"


class TaskPart(db.Model):
    """承办: one working unit's share of a task, run through the state machine."""
    __tablename__ = "task_part"
    __table_args__ = (
        UniqueConstraint("task_id", "unit_id"),
        # A part is never closed: the office closes the task.
        CheckConstraint(sql_in("state", PART_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(20), default=TaskState.PLANNED.value, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)  # last reported percentage
    version: Mapped[int] = mapped_column(Integer, default=1)
    # 签收: the unit acknowledged the part (cleared when the office edits the task's text or deadline).
    received_at: Mapped[datetime | None] = mapped_column(DateTime)
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    # 延期: the part's own deadline once an extension is granted (NULL: the task's).
    deadline: Mapped[date | None] = mapped_column(Date)
    # 红色预警 holds until the lag is caught up (workflow/pace.py): set when a
    # date or line changes under a red part, cleared by a progress report that catches up.
    red_since: Mapped[datetime | None] = mapped_column(DateTime)
    red_reason: Mapped[str | None] = mapped_column(String(200))

    task: Mapped[Task] = relationship(back_populates="parts")
    unit: Mapped[Unit] = relationship()
    received_by = relationship("User", foreign_keys=[received_by_id])
    progress_notes = relationship("ProgressNote", back_populates="part", order_by="ProgressNote.at")
    submissions = relationship("Submission", back_populates="part", order_by="Submission.number")
    evidence = relationship("Evidence", back_populates="part", order_by="Evidence.id")
    extensions = relationship("ExtensionRequest", back_populates="part", order_by="ExtensionRequest.id")
    milestones = relationship("Milestone", back_populates="part", order_by="Milestone.on")

    # The ORM adds "WHERE version = <version read>" to every UPDATE and raises
    # StaleDataError when another transaction got there first.
    __mapper_args__ = {"version_id_col": version}

    def deadline_in_force(self, task=None) -> date | None:
        """The part's own (extended) deadline, else its task's. ``task`` saves a
        lazy load where the caller has it (see auth.permissions.task_of)."""
        return self.deadline or (task or self.task).deadline

    @property
    def pending_evidence(self):
        return [e for e in self.evidence if e.submission_id is None]
