"""Figures kept per process until the audit trail moves; task pages until their task's trail does.

Every change that moves a count or a colour (a state, a deadline, a unit, a milestone, progress,
an import) is an audited action, so the chain's head — its seq and hash, one row read by its
key — says when a count made earlier still holds. Keyed by the hash too: after a restore the
seq may come back to a value it had before, the hash does not.

Read the head first, then compute: on PostgreSQL (READ COMMITTED) each later statement sees at
least what the head said, on SQLite (WAL) the read transaction's snapshot holds for both; a figure
is never stored under a head newer than its data. A transaction that has written (entries
waiting for the chain, objects to flush) computes without the cache: its figures are not yet
anybody else's.

A task page (``cached_page``) is kept under a narrower stamp (``task_stamp``): its task's newest
entry and the newest general one. Everything the page shows beyond its own task (users, units,
plans, rounds opened or closed) changes with an entry about no single task, so a write on one
task leaves the kept pages of the others standing.
"""
from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

from flask import current_app, g, has_request_context
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from models import AuditEntry, AuditHead
from workflow import audit
from workflow.extensions import db

T = TypeVar("T")

#: Figures kept per head; past this many the oldest go (each is a few numbers).
MAX_FIGURES = 512
#: Pages kept (``cached_page``: a task page's HTML, 10–200 KB); past this many bytes in a process
#: the least recently shown go.
MAX_PAGE_BYTES = 16 * 1024 * 1024

_KEY = "luoshi.head_cache"
_PAGES_KEY = "luoshi.head_cache.pages"


class _Store:
    """Figures under one head: a new head drops them all."""

    def __init__(self, max_items: int):
        self.lock = threading.Lock()
        self.max_items = max_items
        self.head: tuple[int, str] | None = None
        self.figures: dict[Hashable, object] = {}

    def get(self, head_now, key):
        with self.lock:
            if self.head == head_now and key in self.figures:
                return True, self.figures[key]
        return False, None

    def put(self, head_now, key, value) -> None:
        with self.lock:
            if self.head != head_now:
                self.head, self.figures = head_now, {}
            self.figures.pop(key, None)
            while len(self.figures) >= self.max_items:
                del self.figures[next(iter(self.figures))]
            self.figures[key] = value


class _Pages:
    """Pages each under a stamp of its own (a write elsewhere leaves them), least recently shown
    first out past ``max_bytes``."""

    def __init__(self, max_items: int, max_bytes: int):
        self.lock = threading.Lock()
        self.max_items, self.max_bytes = max_items, max_bytes
        self.pages: OrderedDict[Hashable, tuple[Hashable, object, int]] = OrderedDict()
        self.bytes = 0

    def get(self, key, stamp):
        with self.lock:
            found = self.pages.get(key)
            if found is not None and found[0] == stamp:
                self.pages.move_to_end(key)
                return True, found[1]
        return False, None

    def put(self, key, stamp, value, size: int) -> None:
        if size > self.max_bytes:
            return
        with self.lock:
            old = self.pages.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            while self.pages and (len(self.pages) >= self.max_items or self.bytes + size > self.max_bytes):
                self.bytes -= self.pages.popitem(last=False)[1][2]
            self.pages[key] = (stamp, value, size)
            self.bytes += size


def _store(name: str, make: Callable[[], T]) -> T:
    found = current_app.extensions.get(name)
    if found is None:
        found = current_app.extensions.setdefault(name, make())
    return found


def head() -> tuple[int, str]:
    """(seq, hash) of the chain's head; (0, GENESIS) on an empty trail."""
    row = audit.head_row()
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
    store = _store(_KEY, lambda: _Store(MAX_FIGURES))
    hit, value = store.get(now, key)
    if hit:
        return value
    value = compute()
    store.put(now, key, value)
    return value


def task_stamp(task_id: int) -> tuple[str | None, str | None]:
    """What a task page depends on in the trail: the hash of the task's newest entry (its parts' are
    its too, ``audit.append``) and the head's ``general_hash`` (the newest entry about no single
    task: users, units, plans, rounds). A change on another task moves neither. One statement, the
    newest entry found by the timeline's index; read before the page, like ``request_head``."""
    return tuple(db.session.execute(_task_stamp_statement(), {"task_id": task_id}).one())


@functools.cache
def _task_stamp_statement():
    newest = (select(AuditEntry.hash).where(AuditEntry.task_id == bindparam("task_id"))
              .order_by(AuditEntry.seq.desc()).limit(1).scalar_subquery())
    return select(newest, AuditHead.general_hash).where(AuditHead.id == 1)


def cached_page(key: Hashable, stamp: Hashable, render: Callable[[], tuple[str, str]]) -> tuple[str, str]:
    """``render()`` — a page's (title, body) HTML — or what it gave for ``key`` under the same
    ``stamp`` (``task_stamp``, read before) and settings, in a store of its own bounded by
    ``MAX_PAGE_BYTES``. The key must hold everything else the HTML depends on (the user, the day);
    the body nothing of the request (the caller takes its CSRF token out before and puts the
    current one back)."""
    if writing():
        return render()
    key = (key, getattr(current_app.config, "generation", None))   # config.CountedConfig
    store = _store(_PAGES_KEY, lambda: _Pages(1 << 16, MAX_PAGE_BYTES))
    hit, value = store.get(key, stamp)
    if hit:
        return value
    value = render()
    store.put(key, stamp, value, size=sum(len(part) for part in value) * 3)   # UTF-8: up to 3 bytes a character
    return value
