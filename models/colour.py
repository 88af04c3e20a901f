"""The colours (红黄蓝) of every task on one day, as the worker assessed them
(workflow/colours.py): a web process that starts, or meets a new day, takes
them from here and catches up from the audit trail instead of assessing a
hundred thousand tasks itself."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from workflow.extensions import db


class ColourSnapshot(db.Model):
    __tablename__ = "colour_snapshot"

    id: Mapped[int] = mapped_column(primary_key=True)        # one row: 1
    day: Mapped[date] = mapped_column(Date)                   # China Standard Time
    # The warning settings and the rules' code it was assessed with (colours._settings_text).
    settings: Mapped[str] = mapped_column(String(200))
    # The audit head it is true at: a reader catches up from here, or ignores it when the
    # entry at head_seq has another hash (a restored or different trail).
    head_seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    tasks: Mapped[int] = mapped_column(Integer)
    # Every task's colour, plan, chapter, lead units and list order, column by column (colours._encode).
    data: Mapped[bytes] = mapped_column(LargeBinary)
    made_at: Mapped[datetime] = mapped_column(DateTime)
