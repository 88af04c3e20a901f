"""Counters for rate limiting, shared by every server process through the database."""
from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from workflow.extensions import db


class RateLimitCounter(db.Model):
    """One fixed-window counter of the ``limits`` library (auth/ratelimit.py).

    The key is built by ``limits`` from the limit and hashed identifiers (the
    client address and a digest of the typed user name), never the typed text
    itself. ``expires_at`` is a Unix time: when it has passed the counter
    starts again from zero.
    """
    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
