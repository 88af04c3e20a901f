"""`flask audit verify` on an intact chain and on chains tampered with by raw SQL."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tests.helpers import unit_username
from workflow import audit, services
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "seed"


@pytest.fixture
def chain(app):
    """A dozen real entries, written through the services; returns their seqs."""
    from models import AuditEntry, Task, User

    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(User))}
        tasks = db.session.scalars(select(Task).order_by(Task.id).limit(4)).all()
        for task in tasks:
            part = task.parts[0]
            worker = users[unit_username(part.unit_id, "staff")]
            services.start_part(part, worker)
            services.record_progress(part, worker, 30, "已完成政策宣传3场，覆盖企业45家")
            db.session.commit()
        services.urge(tasks[0], users["office"], "请抓紧推进。")
        db.session.commit()
        seqs = db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
        db.session.remove()
    assert len(seqs) >= 12 and seqs == list(range(1, len(seqs) + 1))
    return seqs


def run_verify(runner):
    result = runner.invoke(args=["audit", "verify"])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def drop_append_only_guard() -> None:
    """What an intruder with the database owner's rights would do first."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("DROP TRIGGER audit_entry_append_only ON audit_entry"))
    else:
        db.session.execute(text("DROP TRIGGER audit_entry_no_update"))
        db.session.execute(text("DROP TRIGGER audit_entry_no_delete"))


def tamper(app, *statements, **params):
    with app.app_context():
        drop_append_only_guard()
        for statement in statements:
            db.session.execute(text(statement), params)
        db.session.commit()
        db.session.remove()


def test_intact_chain_verifies(app, runner, chain):
    code, output = run_verify(runner)
    assert code == 0, output
    assert "审计链完整" in output and f"{len(chain)} 条记录" in output
    with app.app_context():
        assert audit.head_hash() in output


def test_edited_reason_is_named(app, runner, chain):
    target = chain[-1] - 3
    tamper(app, "UPDATE audit_entry SET reason = :r WHERE seq = :s", r="无需催办", s=target)
    code, output = run_verify(runner)
    assert code != 0
    assert f"第 {target} 条记录的内容与其哈希不符" in output
    assert "审计链校验失败" in output


def test_edited_and_rehashed_entry_is_caught_by_the_next(app, runner, chain):
    """Someone who also recomputes the edited entry's hash breaks the link to the next one."""
    from models import AuditEntry

    target = chain[4]
    with app.app_context():
        drop_append_only_guard()
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.seq == target))
        entry.details = {"percent": 100, "note": "全部完成"}
        entry.hash = audit.compute_hash(entry)
        db.session.commit()
        db.session.remove()
    code, output = run_verify(runner)
    assert code != 0
    assert f"第 {target + 1} 条记录的前序哈希不符" in output
    assert f"第 {target} 条记录的内容" not in output


def test_verify_reads_the_trail_in_chunks_and_still_finds_a_break_in_a_later_one(app, runner, chain, monkeypatch):
    monkeypatch.setattr(audit, "VERIFY_CHUNK", 3)
    code, output = run_verify(runner)
    assert code == 0 and f"{len(chain)} 条记录" in output, output
    target = chain[-1] - 1
    tamper(app, "UPDATE audit_entry SET reason = :r WHERE seq = :s", r="改动", s=target)
    code, output = run_verify(runner)
    assert code != 0 and f"第 {target} 条记录的内容与其哈希不符" in output


def test_deleted_entry_is_named(app, runner, chain):
    target = chain[5]
    tamper(app, "DELETE FROM audit_entry WHERE seq = :s", s=target)
    code, output = run_verify(runner)
    assert code != 0
    assert f"第 {target} 条至第 {target} 条记录缺失" in output


def test_swapped_entries_are_named(app, runner, chain):
    a, b = chain[3], chain[6]
    # seq is unique: swap through a value no entry uses.
    tamper(app, "UPDATE audit_entry SET seq = -1 WHERE seq = :a", "UPDATE audit_entry SET seq = :a WHERE seq = :b",
           "UPDATE audit_entry SET seq = :b WHERE seq = -1", a=a, b=b)
    code, output = run_verify(runner)
    assert code != 0
    assert f"第 {a} 条记录" in output and f"第 {b} 条记录" in output


def test_adjacent_swap_is_named(app, runner, chain):
    a, b = chain[2], chain[3]
    tamper(app, "UPDATE audit_entry SET seq = -1 WHERE seq = :a", "UPDATE audit_entry SET seq = :a WHERE seq = :b",
           "UPDATE audit_entry SET seq = :b WHERE seq = -1", a=a, b=b)
    code, output = run_verify(runner)
    assert code != 0
    assert f"第 {a} 条记录" in output and f"第 {b} 条记录" in output


def test_removed_last_entry_is_named(app, runner, chain):
    last = chain[-1]
    tamper(app, "DELETE FROM audit_entry WHERE seq = :s", s=last)
    code, output = run_verify(runner)
    assert code != 0
    assert f"第 {last} 条记录（链尾）被删除" in output


def test_the_chain_goes_on_after_verification(app, runner, chain):
    """Verifying is read-only: appending afterwards still yields an intact chain."""
    from models import Task, User

    assert run_verify(runner)[0] == 0
    with app.app_context():
        task = db.session.scalars(select(Task).order_by(Task.id.desc())).first()
        office = db.session.scalar(select(User).where(User.username == "office"))
        services.urge(task, office)
        db.session.commit()
        db.session.remove()
    code, output = run_verify(runner)
    assert code == 0 and f"{len(chain) + 1} 条记录" in output


@pytest.mark.parametrize("statement", ["UPDATE audit_entry SET reason = '改过' WHERE seq = 1",
                                       "DELETE FROM audit_entry WHERE seq = 1"])
def test_the_database_refuses_to_change_history(app, runner, chain, statement):
    from sqlalchemy.exc import DBAPIError

    with app.app_context():
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
            db.session.flush()
        db.session.rollback()
    code, output = run_verify(runner)
    assert code == 0, output


# ---------------------------------------------------------------- chaining at commit

def test_entries_of_one_transaction_take_the_head_once_at_commit(app, count_queries):
    """Several entries in one transaction: the head is read (PostgreSQL: locked)
    once, when the transaction commits, and the entries follow one another."""
    from models import AuditEntry, AuditHead

    with app.app_context():
        seq_before = audit.entry_count()
        with count_queries() as statements:
            for n in range(3):
                audit.append("urge", username="office", reason=f"第{n + 1}次")
            assert db.session.get(AuditHead, 1).seq == seq_before     # nothing chained before the commit
            db.session.commit()
        head_reads = [s for s in statements if "FROM audit_head" in s]
        head_writes = [s for s in statements if s.lstrip().upper().startswith("UPDATE AUDIT_HEAD")]
        assert len(head_reads) == 2 and len(head_writes) == 1   # the get above, the commit's lock; one update
        if db.engine.dialect.name == "postgresql":
            assert sum("FOR UPDATE" in s for s in head_reads) == 1
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.seq > seq_before)
                                     .order_by(AuditEntry.seq)).all()
        assert [e.reason for e in entries] == ["第1次", "第2次", "第3次"]
        assert [e.seq for e in entries] == [seq_before + 1, seq_before + 2, seq_before + 3]
        assert audit.verify() == []
        db.session.remove()


def test_a_savepoint_rolled_back_takes_its_entries_and_leaves_the_rest(app):
    from models import AuditEntry

    with app.app_context():
        seq_before = audit.entry_count()
        audit.append("urge", username="office", reason="之前")
        try:
            with db.session.begin_nested():
                audit.append("urge", username="office", reason="撤销的保存点里")
                raise RuntimeError("the savepoint fails")
        except RuntimeError:
            pass
        with db.session.begin_nested():
            audit.append("urge", username="office", reason="保留的保存点里")
        audit.append("urge", username="office", reason="之后")
        db.session.commit()
        reasons = db.session.scalars(select(AuditEntry.reason).where(AuditEntry.seq > seq_before)
                                     .order_by(AuditEntry.seq)).all()
        assert reasons == ["之前", "保留的保存点里", "之后"]
        assert audit.verify() == []

        audit.append("urge", username="office", reason="回滚的事务里")
        db.session.rollback()
        db.session.commit()
        assert audit.entry_count() == seq_before + 3
        db.session.remove()


def test_jobs_asked_for_before_a_failed_savepoint_are_still_queued(app, monkeypatch):
    from workflow import background

    queued = []
    monkeypatch.setattr(background, "enqueue", lambda name, *args, **kw: queued.append((name, args)))
    with app.app_context():
        background.enqueue_after_commit("job.before", 1)
        try:
            with db.session.begin_nested():
                background.enqueue_after_commit("job.inside_failed", 2)
                raise RuntimeError("the savepoint fails")
        except RuntimeError:
            pass
        with db.session.begin_nested():
            background.enqueue_after_commit("job.inside_released", 3)
        assert queued == []                       # a savepoint released is not a commit
        db.session.commit()
        assert queued == [("job.before", (1,)), ("job.inside_released", (3,))]
        background.enqueue_after_commit("job.rolled_back", 4)
        db.session.rollback()
        db.session.commit()
        assert len(queued) == 2
        db.session.remove()
