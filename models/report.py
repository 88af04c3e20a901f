"""Archived PDF reports: what was generated, from what, by whom."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db
from workflow.vocabulary import ReportKind, ReportStatus


class ReportArchive(db.Model):
    __tablename__ = "report_archive"
    __table_args__ = (
        CheckConstraint(ReportKind.sql_check("kind"), name="kind"),
        CheckConstraint(ReportStatus.sql_check("status"), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))            # a ReportKind
    params: Mapped[dict] = mapped_column(JSON)               # plan, unit, item, as_of …
    params_key: Mapped[str] = mapped_column(String(64), index=True)   # sha256 of canonical params
    as_of: Mapped[datetime] = mapped_column(DateTime)
    audit_head: Mapped[str] = mapped_column(String(64))      # chain head when generated
    # Position of that head in the chain (printed with it in the report).
    audit_seq: Mapped[int | None] = mapped_column(Integer)
    # Hash of the last audit entry that can change report content (logins and
    # report generation skipped): same params + same input_head = same report.
    input_head: Mapped[str | None] = mapped_column(String(64), index=True)
    pages: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default=ReportStatus.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The worker's claim (workflow/reports/jobs.py): tries so far, its pulse, who, how far.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str | None] = mapped_column(String(120))
    progress: Mapped[int] = mapped_column(Integer, default=0)

    created_by = relationship("User")

    @property
    def kind_label(self) -> str:
        return ReportKind.label_of(self.kind)

    @property
    def status_label(self) -> str:
        return ReportStatus.label_of(self.status)
