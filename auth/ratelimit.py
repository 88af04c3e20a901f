"""Rate limits for sign-in: Flask-Limiter, with counters every server process shares.

Flask-Limiter keeps its counters in a ``limits`` storage named by
``RATELIMIT_STORAGE_URI``. ``limits`` has no SQL storage, so the embedded
default, ``luoshi-db://``, is the small one below: a table
(``rate_limit_counter``) written through the request's own SQLAlchemy session.
That has two consequences the login view relies on:

* the counters are committed with the audit entry of the same attempt, or not
  at all: a request refused with 429, or one that fails half-way, leaves no
  count behind, and a database that refuses writes refuses the attempt;
* every gunicorn worker (and every server on the same database) sees the same
  counts, which an in-memory storage would not.

A broker URI (``redis://host:6379/0``, needs the ``redis`` package) works as
well; its counters are then written at once, outside the transaction.

Only the fixed-window strategy is supported by this storage.
"""
from __future__ import annotations

import hashlib
import time

from flask import request
from flask_limiter import Limiter
from limits import parse_many
from limits.storage import Storage
from sqlalchemy import case, delete, select
from sqlalchemy.exc import SQLAlchemyError

from models import RateLimitCounter
from workflow.extensions import db


def client_address() -> str:
    """The client's address as the WSGI server (after ProxyFix, see
    TRUSTED_PROXIES) reports it; never a header the client may set itself."""
    return request.remote_addr or "unknown"


def account_key(username: str) -> str:
    """A fixed-length digest of the typed user name, case-folded so that "Office"
    and "office" share one counter. Unknown names get counters exactly like
    real ones, so that the answers do not tell them apart."""
    return hashlib.sha256(username.strip().casefold().encode("utf-8")).hexdigest()[:32]


limiter = Limiter(key_func=client_address)


def limits_from(config_value: str):
    """'5 per 15 minutes; 10 per hour' → RateLimitItems, smallest window first."""
    return sorted(parse_many(config_value), key=lambda item: item.get_expiry())


def _table():
    return RateLimitCounter.__table__


def _insert(table):
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


class DatabaseStorage(Storage):
    """A ``limits`` storage in the application database (fixed windows only)."""

    STORAGE_SCHEME = ["luoshi-db"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        table = _table()
        now = time.time()
        expired = table.c.expires_at <= now
        # One statement, so that concurrent hits on the same key all count
        # (the row stays locked until the request commits).
        stmt = _insert(table).values(key=key, count=amount, expires_at=now + expiry)
        stmt = stmt.on_conflict_do_update(index_elements=[table.c.key], set_={
            "count": case((expired, amount), else_=table.c.count + amount),
            "expires_at": case((expired, now + expiry), else_=table.c.expires_at),
        }).returning(table.c.count)
        count = db.session.execute(stmt).scalar_one()
        if count == amount:
            self._purge(now)
        return count

    def _purge(self, now: float) -> None:
        # A window just started: drop counters that ran out a day ago, skipping
        # rows another request holds (PostgreSQL) so that two purges never wait
        # for each other. SQLite has one writer at a time and ignores FOR UPDATE.
        table = _table()
        stale = select(table.c.key).where(table.c.expires_at < now - 86400).limit(500).with_for_update(
            skip_locked=True)
        keys = db.session.scalars(stale).all()
        if keys:
            db.session.execute(delete(table).where(table.c.key.in_(keys)))

    def _row(self, key: str):
        table = _table()
        row = db.session.execute(select(table.c.count, table.c.expires_at).where(table.c.key == key)).first()
        if row is None or row.expires_at <= time.time():
            return None
        return row

    def get(self, key: str) -> int:
        row = self._row(key)
        return row.count if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row.expires_at if row else time.time()

    def check(self) -> bool:
        db.session.execute(select(1))
        return True

    def reset(self) -> int | None:
        return db.session.execute(delete(_table())).rowcount

    def clear(self, key: str) -> None:
        db.session.execute(delete(_table()).where(_table().c.key == key))
