"""workflow/vocabulary.py: members are the stored strings, each has its label, and the
database's CHECK constraints (migration 1b8127a3c7ff) list the same values."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from sqlalchemy import select, text

from workflow import vocabulary as v
from workflow.extensions import db

MIGRATION = (Path(__file__).resolve().parent.parent / "migrations" / "versions"
             / "1b8127a3c7ff_vocabulary_checks_utc_defaults.py")
RHYTHM_MIGRATION = MIGRATION.parent / "6f667b0a67df_background_work.py"


def test_members_are_the_stored_strings_with_their_labels():
    assert v.TaskState.PLANNED == "planned" and hash(v.TaskState.PLANNED) == hash("planned")
    assert json.dumps([v.SubmissionOutcome.RETURNED]) == '["returned"]'
    assert f"{v.NotificationKind.LOGIN_ALERT}" == "login_alert"
    assert v.STATE_LABELS == {"planned": "计划", "in_progress": "推进中", "submitted": "已提交",
                              "verified": "已核验", "closed": "已办结"}
    assert v.PART_STATES == ("planned", "in_progress", "submitted", "verified")
    # Plain str, so transitions names the machine's states by value, not "PLANNED".
    assert all(type(s) is str for s in v.TASK_STATES + v.PART_STATES + (v.PLANNED, v.CLOSED))
    assert v.TaskKind.labels() == {"task": "工作任务", "measure": "保障措施"}
    assert (v.TaskKind.TASK.short, v.TaskKind.MEASURE.short) == ("任", "保")
    assert v.ReportStatus.labels() == {"pending": "排队中", "running": "生成中", "done": "已完成", "failed": "失败"}
    assert v.NotificationKind.label_of("report") == "报告"
    assert v.NotificationKind.label_of("something_new") == "something_new"   # shown as stored, not a crash
    assert v.SubmissionOutcome.values() == ("pending", "returned", "verified", "reopened")
    assert v.ClauseSource.values() == ("own", "shared", "owner")
    for vocabulary in (v.TaskState, v.TaskKind, v.ClauseSource, v.SubmissionOutcome, v.NotificationKind,
                       v.UnitKind, v.ReportKind, v.ReportStatus, v.RoundKind, v.RoundState, v.ExtensionState,
                       v.MilestoneState, v.WarningLevel):
        assert all(m.label and not m.label.isascii() for m in vocabulary), vocabulary


def test_the_migration_checks_the_values_of_the_vocabulary():
    """A value added to the vocabulary needs a migration: this fails until it has one."""
    spec = importlib.util.spec_from_file_location("vocabulary_migration", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.TASK_STATES == v.TASK_STATES
    assert migration.PART_STATES == v.PART_STATES
    assert migration.CLAUSE_SOURCES == v.ClauseSource.values()
    assert migration.REPORT_STATUSES == v.ReportStatus.values()
    # Report kinds grew since: the latest migration that checks them has them all.
    spec = importlib.util.spec_from_file_location("rhythm_migration", RHYTHM_MIGRATION)
    rhythm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rhythm)
    assert rhythm.REPORT_KINDS == v.ReportKind.values()


def test_a_member_written_by_the_orm_is_stored_as_its_value(app):
    from models import Unit

    with app.app_context():
        db.session.add(Unit(name="区测试局", kind=v.UnitKind.BUREAU))
        db.session.commit()
        assert db.session.scalar(text("SELECT kind FROM unit WHERE name = '区测试局'")) == "bureau"
        assert type(db.session.scalar(select(Unit.kind))) is str


def test_the_inbox_shows_every_kind_by_its_label(app, office_client):
    from models import Notification, User
    from workflow.timeutil import utcnow

    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        for kind in v.NotificationKind:
            db.session.add(Notification(user_id=office.id, kind=kind, message=f"消息 {kind.value}",
                                        created_at=utcnow()))
        db.session.commit()
    html = office_client.get("/inbox").get_data(as_text=True)
    for kind in v.NotificationKind:
        assert f'<span class="badge kind-{kind.value}">{kind.label}</span>' in html
