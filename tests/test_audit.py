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
