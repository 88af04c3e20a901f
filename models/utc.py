"""A creation time in UTC, whoever inserts the row.

Every timestamp is stored as naive UTC (workflow/timeutil.py). ``CURRENT_TIMESTAMP`` is UTC
on SQLite, but on PostgreSQL a ``timestamp without time zone`` column gets it in the session's
time zone, so the server default there is ``timezone('utc', now())``. The ORM does not rely on
either: it sends ``utcnow()`` itself; the server default is for rows inserted by plain SQL.
"""
from __future__ import annotations

from sqlalchemy import DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import mapped_column
from sqlalchemy.sql.functions import FunctionElement

from workflow.timeutil import utcnow


class utc_now(FunctionElement):  # noqa: N801 - reads as the SQL function it stands for
    type = DateTime()
    inherit_cache = True


@compiles(utc_now)
def _utc_now_default(element, compiler, **kw):
    return "CURRENT_TIMESTAMP"


@compiles(utc_now, "postgresql")
def _utc_now_postgresql(element, compiler, **kw):
    return "timezone('utc', now())"


def created_at_column():
    """``created_at``-style column: set by the application, defaulted by the database."""
    return mapped_column(DateTime, default=utcnow, server_default=utc_now())

