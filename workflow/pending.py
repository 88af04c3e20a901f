"""Work that waits for the transaction to commit, and goes with it on a rollback.

Audit entries take their place in the chain when the transaction commits, and
background jobs are queued once it has committed. Both are kept here, in the
session, each with the transaction (or savepoint) it was added in: a savepoint
rolled back drops what was added inside it and keeps the rest; a savepoint
released hands its items to the transaction around it; only the outermost
commit is a commit.
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "luoshi.pending"


def add(session: Session, kind: str, item) -> None:
    # Between transactions, begin one: a rollback before the next statement
    # must drop the item as it would have inside a transaction.
    transaction = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_KEY, []).append((kind, transaction, item))


def waiting(session: Session, kind: str) -> bool:
    return any(k == kind for k, _, _ in session.info.get(_KEY) or ())


def take(session: Session, kind: str) -> list:
    """The items of one kind, in the order they were added, removed from the session."""
    held = session.info.get(_KEY) or []
    taken = [item for k, _, item in held if k == kind]
    session.info[_KEY] = [entry for entry in held if entry[0] != kind]
    return taken


def committing_outermost(session: Session) -> bool:
    """In a before/after_commit hook: is this the real commit (not a savepoint's release)?"""
    return not session.in_nested_transaction()


@event.listens_for(Session, "before_commit")
def _hand_to_parent(session):
    savepoint = session.get_nested_transaction()
    if savepoint is None or not session.info.get(_KEY):
        return
    parent = savepoint.parent
    session.info[_KEY] = [(k, parent if t is savepoint else t, item) for k, t, item in session.info[_KEY]]


@event.listens_for(Session, "after_transaction_end")
def _drop(session, transaction):
    # By now a commit has taken its items and a released savepoint has handed
    # its own on: what is left of this transaction was rolled back or closed.
    if not session.info.get(_KEY):
        return
    if transaction.parent is None:
        session.info.pop(_KEY, None)
    else:
        session.info[_KEY] = [entry for entry in session.info[_KEY] if entry[1] is not transaction]
