"""Counts and lists kept until the audit trail moves (workflow/head_cache.py): a page counts its
rows once, and counts again after any audited change — on both databases."""
from __future__ import annotations

import re

import pytest

from sqlalchemy import func, select, update

from tests.helpers import find_seed_task, unit_user
from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "seed"


def _counts_sent(statements) -> list[str]:
    return [s for s in statements if re.match(r"\s*SELECT count\(\*\)", s)]


def _total_of(html: str) -> int:
    return int(re.search(r"共 (\d+) 条", html)[1])


def test_the_task_list_counts_once_per_change_of_the_trail(app, login, count_queries):
    from models import Task, TaskPart
    from workflow import services
    from workflow.vocabulary import IN_PROGRESS, PLANNED

    office = login("office")
    first = office.get("/tasks/?state=planned").get_data(as_text=True)
    with app.app_context():
        planned = db.session.scalar(select(func.count(Task.id)).where(Task.state == PLANNED))
    assert _total_of(first) == planned
    with count_queries() as statements:
        again = office.get("/tasks/?state=planned").get_data(as_text=True)
    assert _counts_sent(statements) == [] and _total_of(again) == planned

    # One audited change (a part started): the next view counts again and shows it.
    with app.app_context():
        part = find_seed_task(parts=1).parts[0]
        services.start_part(part, unit_user(part.unit_id, "staff"))
        db.session.commit()
        assert db.session.get(Task, part.task_id).state == IN_PROGRESS
    with count_queries() as statements:
        after = office.get("/tasks/?state=planned").get_data(as_text=True)
    assert len(_counts_sent(statements)) == 1 and _total_of(after) == planned - 1


def test_a_head_with_the_same_seq_and_another_hash_is_another_trail(app):
    """After a restore the seq can come back to a value it had: the hash tells the trails apart."""
    from models import AuditHead
    from workflow import head_cache

    calls = []
    with app.test_request_context():
        assert head_cache.cached("k", lambda: calls.append(1) or len(calls)) == 1
    with app.test_request_context():
        assert head_cache.cached("k", lambda: calls.append(1) or len(calls)) == 1
        seq, old_hash = head_cache.head()
        db.session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash="f" * 64))
        db.session.commit()
    with app.test_request_context():
        assert head_cache.head() == (seq, "f" * 64)
        assert head_cache.cached("k", lambda: calls.append(1) or len(calls)) == 2
        db.session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=old_hash))
        db.session.commit()


def test_a_transaction_that_has_written_counts_without_the_cache(app):
    """Its figures include its own uncommitted rows: kept, they would be shown to others."""
    from models import TaskPart
    from workflow import head_cache, services
    from workflow.vocabulary import PLANNED

    with app.test_request_context():
        assert head_cache.cached("planned", lambda: 1) == 1
        part = db.session.scalar(select(TaskPart).where(TaskPart.state == PLANNED).limit(1))
        services.start_part(part, unit_user(part.unit_id, "staff"))
        assert head_cache.cached("planned", lambda: 2) == 2      # not the kept 1
        db.session.rollback()
    with app.test_request_context():
        assert head_cache.cached("planned", lambda: 3) == 1       # the rollback changed nothing


def test_a_transaction_that_flushed_a_write_counts_without_the_cache(app):
    """Flushed rows are no longer pending in the session, but they are still this transaction's own."""
    from models import Task
    from workflow import head_cache

    with app.test_request_context():
        assert head_cache.cached("texts", lambda: 1) == 1
        task = db.session.scalar(select(Task).limit(1))
        task.note = "改动尚未提交"
        db.session.flush()
        assert not (db.session.new or db.session.dirty) and head_cache.writing()
        assert head_cache.cached("texts", lambda: 2) == 2
        db.session.rollback()
        assert not head_cache.writing()
        assert head_cache.cached("texts", lambda: 3) == 1


def test_a_transaction_whose_only_write_is_chained_audit_entries_counts_without_the_cache(app):
    """The chain writes its entries and head with its own statements (no flush says so): a
    transaction that wrote only entries, then read the trail (which chains them), has written."""
    from models import AuditEntry
    from workflow import audit, head_cache

    with app.test_request_context():
        assert head_cache.cached("entries", lambda: 1) == 1
        audit.append("login", username="office")
        db.session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))   # chains it
        assert not audit.has_waiting(db.session()) and head_cache.writing()
        assert head_cache.cached("entries", lambda: 2) == 2
        db.session.rollback()
        assert not head_cache.writing()
