"""Figures (and task pages, ``cached_page``) kept per process until the audit trail moves.

Every change that moves a count or a colour (a state, a deadline, a unit, a milestone, progress,
an import) is an audited action, so the chain's head — its seq and hash, one row read by its
key — says when a count made earlier still holds. Keyed by the hash too: after a restore the
seq may come back to a value it had before, the hash does not.

Read the head first, then compute: on PostgreSQL (READ COMMITTED) each later statement sees at
least what the head said, on SQLite (WAL) the read transaction's snapshot holds for both; a figure
is never stored under a head newer than its data. A transaction that has written (entries
waiting for the chain, objects to flush) computes without the cache: its figures are not yet
anybody else's.
"""
from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

from flask import current_app, g, has_request_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from models import AuditHead
from workflow import audit
from workflow.extensions import db

T = TypeVar("T")

#: Figures kept per head; past this many the oldest go (each is a few numbers).
MAX_FIGURES = 512
#: Pages kept per head (``cached_page``: a task page's HTML, 10–200 KB); past this many bytes in a
#: process the oldest go.
MAX_PAGE_BYTES = 16 * 1024 * 1024

_KEY = "luoshi.head_cache"
_PAGES_KEY = "luoshi.head_cache.pages"


class _Store:
    def __init__(self, max_items: int, max_bytes: int | None = None):
        self.lock = threading.Lock()
        self.max_items, self.max_bytes = max_items, max_bytes
        self.head: tuple[int, str] | None = None
        self.figures: dict[Hashable, object] = {}
        self.sizes: dict[Hashable, int] = {}
        self.bytes = 0

    def get(self, head_now, key):
        with self.lock:
            if self.head == head_now and key in self.figures:
                return True, self.figures[key]
        return False, None

    def put(self, head_now, key, value, size: int = 0) -> None:
        if self.max_bytes is not None and size > self.max_bytes:
            return
        with self.lock:
            if self.head != head_now:
                self.head, self.figures, self.sizes, self.bytes = head_now, {}, {}, 0
            if key in self.figures:
                self.bytes -= self.sizes.pop(key, 0)
                del self.figures[key]
            while self.figures and (len(self.figures) >= self.max_items or (
                    self.max_bytes is not None and self.bytes + size > self.max_bytes)):
                oldest = next(iter(self.figures))
                del self.figures[oldest]
                self.bytes -= self.sizes.pop(oldest, 0)
            self.figures[key] = value
            self.sizes[key] = size
            self.bytes += size


def _store(name: str, max_items: int, max_bytes: int | None = None) -> _Store:
    found = current_app.extensions.get(name)
    if found is None:
        found = current_app.extensions.setdefault(name, _Store(max_items, max_bytes))
    return found


def head() -> tuple[int, str]:
    """(seq, hash) of the chain's head; (0, GENESIS) on an empty trail."""
    row = db.session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    return (row.seq, row.hash) if row is not None else (0, audit.GENESIS)


def head_columns() -> tuple:
    """The head's seq and hash as scalar subqueries: the request's first query (the user's load,
    auth/session.py) carries them, one statement fewer on every page (``remember_request_head``)."""
    return (select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery(),
            select(AuditHead.hash).where(AuditHead.id == 1).scalar_subquery())


def remember_request_head(seq: int | None, hash_: str | None) -> None:
    """The head read by ``head_columns`` is this request's (read first, as ``request_head`` would)."""
    if has_request_context():
        g.luoshi_head = (seq, hash_) if seq is not None else (0, audit.GENESIS)


def request_head() -> tuple[int, str]:
    # Read once per request. Should the request commit a change after this (it would not be
    # computing from the cache while it wrote), later figures are newer than the head they are
    # kept under, never older: the next request reads the new head and counts again.
    if not has_request_context():
        return head()
    if "luoshi_head" not in g:
        g.luoshi_head = head()
    return g.luoshi_head


_WROTE = audit.WROTE   # set by every flush, and by the audit chain's own statements


@event.listens_for(Session, "after_flush")
def _flushed(session, flush_context):
    session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session, transaction):
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def writing() -> bool:
    """Whether this request's transaction has written (its figures are its own): rows flushed,
    entries waiting for the chain, or objects still to flush."""
    session = db.session()
    return (session.info.get(_WROTE, False) or audit.has_waiting(session)
            or bool(session.new or session.dirty or session.deleted))


def cached(key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, or what it gave for ``key`` since the trail last moved."""
    if writing():
        return compute()
    now = request_head()
    store = _store(_KEY, MAX_FIGURES)
    hit, value = store.get(now, key)
    if hit:
        return value
    value = compute()
    store.put(now, key, value)
    return value


def cached_page(key: Hashable, render: Callable[[], tuple[str, str]]) -> tuple[str, str]:
    """``render()`` — a page's (title, body) HTML — or what it gave for ``key`` since the trail last
    moved and the app's settings last changed, in a store of its own bounded by ``MAX_PAGE_BYTES``.
    The key must hold everything else the HTML depends on (the user, the day); the body nothing of
    the request (the caller takes its CSRF token out before and puts the current one back)."""
    if writing():
        return render()
    now = request_head()
    key = (key, getattr(current_app.config, "generation", None))   # config.CountedConfig
    store = _store(_PAGES_KEY, 1 << 16, MAX_PAGE_BYTES)
    hit, value = store.get(now, key)
    if hit:
        return value
    value = render()
    store.put(now, key, value, size=sum(len(part) for part in value) * 3)   # UTF-8: up to 3 bytes a character
    return value
