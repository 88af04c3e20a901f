"""The migrations since 681e495e97b5 (1b8127a3c7ff: vocabulary CHECKs and UTC defaults, and the
ones after it) on a database with data: every row survives the upgrade (and the way down), and
afterwards the database itself refuses a state outside the vocabulary."""
from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from workflow.extensions import db

PREVIOUS = "681e495e97b5"
# Columns a migration fills from the rows already there (284f95b310f5: the deadline as it is), or
# gives a server default the rows already had (6f667b0a67df: every user's channels on; d81f3a6c2b90:
# the demo's plan is a compilation).
REDERIVED = {("task", "deadline_original"), ("user", "notify_email"), ("user", "notify_robot"),
             ("plan", "shape")}
# Columns that come back with their server default, whatever the rows held below (d81f3a6c2b90: the
# seed's generic addressees were read by the importer; going down loses them like a receipt).
DEFAULTED = {("task", "leaders"): [], ("task", "addressees"): []}
# Columns a migration fills from another column of the same row (a7c3e5f9b142: the head's general
# hash starts as its hash).
FROM_ROW = {("audit_head", "general_hash"): "hash"}


def _head() -> str:
    from alembic.script import ScriptDirectory
    from flask import current_app

    return ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config()).get_current_head()


@pytest.fixture
def db_template() -> str:
    # The played demo: parts in every state, submissions, evidence, audit entries,
    # notifications — rows in every table that points at task and task_part.
    return "activity"


def _snapshot() -> dict[str, list[dict]]:
    """Every row of every table, in primary-key order."""
    out = {}
    for name in sorted(inspect(db.engine).get_table_names()):
        if name == "alembic_version":
            continue
        out[name] = [dict(r) for r in db.session.execute(text(f'SELECT * FROM "{name}" ORDER BY 1')).mappings()]
    return out


def _columns() -> dict[str, set[str]]:
    inspector = inspect(db.engine)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}


def _revision() -> str:
    return db.session.scalar(text("SELECT version_num FROM alembic_version"))


def _refused(sql: str, **params) -> bool:
    try:
        with db.session.begin_nested():
            db.session.execute(text(sql), params)
    except IntegrityError:
        return True
    return False


def test_upgrade_from_the_previous_head_keeps_every_row(app):
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        head = _head()
        assert _revision() == head
        before = _snapshot()
        assert any(r["kind"] == "round" for r in before["report_archive"])
        # A round's 调度通报 has no kind below 284f95b310f5: it goes down with the rounds.
        before["report_archive"] = [r for r in before["report_archive"] if r["kind"] != "round"]
        assert before["task_part"] and before["submission"] and before["audit_entry"] and before["notification"]
        assert {s for (s,) in db.session.execute(text("SELECT DISTINCT state FROM task_part"))} >= {
            "planned", "in_progress", "submitted", "verified"}
        db.session.remove()

        downgrade(revision=PREVIOUS)
        db.session.remove()
        assert _revision() == PREVIOUS
        columns = _columns()     # a later migration's new tables and columns do not exist below it
        assert _snapshot() == {name: [{k: v for k, v in r.items() if k in columns[name]} for r in rows]
                               for name, rows in before.items() if name in columns}
        db.session.remove()

        upgrade()
        db.session.remove()
        assert _revision() == head
        # Every row is back; only what a later migration's columns held (a receipt) is lost with
        # them, except what the migration derives again from the rows (the original deadline).
        # A table a later migration made comes back empty.
        def back(name, row, k, v):
            if k in columns[name] or (name, k) in REDERIVED:
                return v
            if (name, k) in FROM_ROW:
                return row[FROM_ROW[(name, k)]]
            return DEFAULTED.get((name, k))

        def plain(name, row):       # SQLite hands JSON back as its text, PostgreSQL as a value
            return {k: json.loads(v) if (name, k) in DEFAULTED and isinstance(v, str) else v
                    for k, v in row.items()}

        after = {name: [plain(name, r) for r in rows] for name, rows in _snapshot().items()}
        assert after == {name: [{k: back(name, r, k, v) for k, v in r.items()} for r in rows]
                               if name in columns else [] for name, rows in before.items()}
        # The rebuilt tables got their indexes and foreign keys back.
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []


@pytest.mark.parametrize("sql", [
    "UPDATE task SET state = 'bogus' WHERE id = :task",
    "UPDATE task SET state = 'Planned' WHERE id = :task",
    "UPDATE task SET clause_source = 'elsewhere' WHERE id = :task",
    "UPDATE task_part SET state = 'closed' WHERE id = :part",     # only a task is closed
    "UPDATE task_part SET state = '' WHERE id = :part",
    "INSERT INTO task_part (task_id, unit_id, position, state, progress, version)"
    " VALUES (:task, :unit, 9, 'done', 0, 1)",
    "UPDATE report_archive SET status = 'lost' WHERE id = :report",
    "UPDATE report_archive SET kind = 'weekly' WHERE id = :report",
])
def test_the_database_refuses_a_value_outside_the_vocabulary(app, sql):
    from models import ReportArchive, Task, TaskPart, Unit

    with app.app_context():
        task = db.session.scalar(select(Task).order_by(Task.id))
        part = task.parts[0]
        free_unit = db.session.scalar(select(Unit).where(Unit.id.not_in([p.unit_id for p in task.parts])))
        report = ReportArchive(kind="overall", params={}, params_key="0" * 64, as_of=task.item.plan.imported_at,
                               audit_head="0" * 64, status="done", created_at=task.item.plan.imported_at)
        db.session.add(report)
        db.session.commit()
        ids = {"task": task.id, "part": part.id, "unit": free_unit.id, "report": report.id}
        # The same statement with a good value goes through: the refusal is the value's.
        good = (sql.replace("'bogus'", "'closed'").replace("'Planned'", "'planned'")
                .replace("'elsewhere'", "'owner'").replace("'closed' WHERE id = :part", "'verified' WHERE id = :part")
                .replace("state = ''", "state = 'submitted'").replace("'done', 0, 1", "'planned', 0, 1")
                .replace("'lost'", "'failed'").replace("'weekly'", "'item'"))
        assert good != sql
        assert _refused(sql, **ids)
        assert not _refused(good, **ids)
        db.session.rollback()
        assert db.session.get(TaskPart, part.id).state == part.state


def test_the_constraints_that_were_there_survive_the_table_rebuild(app):
    """SQLite adds a CHECK by rebuilding the table; the rebuilt table keeps the old ones."""
    from models import Task

    with app.app_context():
        task = db.session.scalar(select(Task).where(Task.deadline.is_not(None)).order_by(Task.id))
        assert _refused("UPDATE task SET kind = 'other' WHERE id = :id", id=task.id)
        assert _refused("UPDATE task SET long_term = :yes WHERE id = :id", id=task.id, yes=True)
        assert _refused("UPDATE task SET item_id = 999999 WHERE id = :id", id=task.id)   # the foreign key
        assert _refused("INSERT INTO task_part (task_id, unit_id, position, state, progress, version)"
                        " SELECT task_id, unit_id, 0, 'planned', 0, 1 FROM task_part WHERE id = :id",
                        id=task.parts[0].id)                                           # unique (task, unit)
