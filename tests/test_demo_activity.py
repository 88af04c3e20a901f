"""The demo activity: played through the services, repeatable, played once."""
from __future__ import annotations

import os
from collections import Counter

import pytest
from sqlalchemy import func, select

from tests.conftest import make_app
from workflow import audit
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "activity"


def fingerprint() -> dict:
    """Everything the activity decides, without timestamps and hashes — and without
    the rendering of the 调度通报 the story queued, which ``flask demo`` does after
    it (a report's entry and notice, not the activity's)."""
    from models import AuditEntry, Evidence, Notification, ProgressNote, Submission, Task, TaskPart

    def rows(model, *columns):
        return [tuple(getattr(r, c) for c in columns) for r in db.session.scalars(select(model).order_by(model.id))]

    return {
        "tasks": rows(Task, "id", "state"),
        "parts": rows(TaskPart, "id", "state", "progress", "received_by_id"),
        "notes": rows(ProgressNote, "part_id", "percent", "note"),
        "submissions": rows(Submission, "part_id", "number", "statement", "outcome", "decision_reason",
                            "submitted_by_id", "decided_by_id"),
        "evidence": rows(Evidence, "part_id", "submission_id", "kind", "filename", "content_sha256", "text"),
        "audit": [r for r in rows(AuditEntry, "seq", "action", "user_id", "part_id", "task_id", "from_state",
                                  "to_state", "reason") if r[1] != "report_generated"],
        "notifications": [r for r in rows(Notification, "user_id", "task_id", "kind", "message") if r[2] != "report"],
    }


def test_the_activity_is_realistic(app):
    from models import AuditEntry, Evidence, ProgressNote, Submission, Task, TaskPart
    from workflow.due import late_clause
    from workflow.timeutil import today_local

    with app.app_context():
        tasks = Counter(db.session.scalars(select(Task.state)))
        parts = Counter(db.session.scalars(select(TaskPart.state)))
        # Every state shows up, and much is left to do.
        assert all(tasks[s] > 0 for s in ("planned", "in_progress", "submitted", "verified", "closed")), tasks
        assert parts["planned"] + parts["in_progress"] > sum(parts.values()) / 2
        assert db.session.scalar(select(func.count(Task.id)).where(late_clause(Task, today_local()))) > 20

        outcomes = Counter(db.session.scalars(select(Submission.outcome)))
        assert outcomes["returned"] and outcomes["pending"] and outcomes["verified"], outcomes
        returned = db.session.scalars(select(Submission).where(Submission.outcome == "returned")).all()
        assert all(s.decision_reason and s.decided_by_id != s.submitted_by_id for s in returned)
        # Returned, then handed in again with new evidence.
        resubmitted = [s for s in db.session.scalars(select(Submission).where(Submission.number == 2))]
        assert resubmitted and all(s.evidence for s in resubmitted)
        assert db.session.scalar(select(func.count(ProgressNote.id))) > 100

        # Real files, stored and readable from this database's upload folder.
        files = db.session.scalars(select(Evidence).where(Evidence.kind == "file")).all()
        assert {os.path.splitext(e.filename)[1] for e in files} == {".pdf", ".png"}
        assert any("台账" in e.filename for e in files)
        from workflow import storage
        for evidence in files:
            with open(storage.path_for(evidence.content_sha256), "rb") as fh:
                data = fh.read()
            assert len(data) == evidence.size
            assert storage.check(data, evidence.filename) == evidence.mime

        # 签收: most parts were received before they were started; some planned
        # parts are received, others wait in the office's 待签收 list.
        all_parts = db.session.scalars(select(TaskPart)).all()
        started = [p for p in all_parts if p.state != "planned"]
        received_first = [p for p in started if p.received_at is not None]
        assert len(received_first) > 0.75 * len(started) and len(received_first) < len(started)
        planned = [p for p in all_parts if p.state == "planned"]
        assert 0 < sum(p.received_at is not None for p in planned) < len(planned)
        for part in received_first[:20]:
            receipt, start = (db.session.scalar(select(AuditEntry.seq).where(
                AuditEntry.part_id == part.id, AuditEntry.action == "transition",
                AuditEntry.details["event"].as_string() == event)) for event in ("receive", "start"))
            assert receipt < start, part.id

        # All of it went through the services: every change is in the chain.
        assert audit.verify() == []


def test_flask_demo_plays_it_once_and_the_same_way(app, databases, tmp_path):
    with app.app_context():
        expected = fingerprint()

    (tmp_path / "fresh").mkdir()
    url = databases.clone("seed", tmp_path / "fresh")
    fresh = make_app(url, tmp_path / "fresh")
    try:
        runner = fresh.test_cli_runner()
        # `flask demo` gets its app context from FlaskGroup; the test runner does not push one.
        with fresh.app_context():
            result = runner.invoke(args=["demo"])
            assert result.exit_code == 0, result.output
            assert "演示活动：" in result.output and "开始办理" in result.output and "签收" in result.output
            db.session.remove()
            assert fingerprint() == expected        # seeded: the same activity every time
            db.session.remove()

            result = runner.invoke(args=["demo"])
            assert result.exit_code == 0, result.output
            assert "已存在办理记录，未重复生成" in result.output
            db.session.remove()
            assert fingerprint() == expected        # nothing duplicated
            db.session.remove()
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(url)
