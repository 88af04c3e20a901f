"""Text typed into any form arrives without bidi overrides or control characters
(the base form class, workflow/views/forms.py), checked through real POSTs."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.helpers import csrf
from tests.test_views_tasks import act
from workflow.extensions import db

RLO, BEL = "\u202e", "\x07"


@pytest.fixture
def db_template() -> str:
    return "seed"


def test_a_unit_name_with_an_override_arrives_clean(app, login):
    from models import AuditEntry, Unit

    office = login("office")
    token = csrf(office.get("/admin/units").text)
    # "区档案馆" with a right-to-left override that would show "区馆案档" in a PDF, and a bell.
    response = office.post("/admin/units/new", data={"csrf_token": token, "name": f"区{RLO}档案馆{BEL}\t",
                                                      "kind": "center"})
    assert response.status_code == 302
    with app.app_context():
        names = db.session.scalars(select(Unit.name)).all()
        assert "区档案馆" in names and not any(RLO in n or BEL in n for n in names)
        details = db.session.scalars(select(AuditEntry.details).where(AuditEntry.action == "unit_created")).all()
        assert RLO not in str(details) and BEL not in str(details)


def test_a_user_name_field_becomes_one_clean_line(app, login):
    from models import User

    office = login("office")
    page = office.get("/admin/users/new").text
    from models import Unit

    with app.app_context():
        unit_id = db.session.scalar(select(Unit.id).order_by(Unit.id))
    response = office.post("/admin/users/new", data={
        "csrf_token": csrf(page), "username": "new.person", "display_name": f"张{RLO}三\r\n{BEL}",
        "unit_id": str(unit_id), "role": "unit_staff", "active": "y", "password": f"pass{BEL}word-2026"})
    assert response.status_code == 302, response.text[:2000]
    with app.app_context():
        person = db.session.scalar(select(User).where(User.username == "new.person"))
        assert person.display_name.strip() == "张三" and RLO not in person.display_name
    # The password is kept exactly as typed (it is hashed, never shown).
    login("new.person", f"pass{BEL}word-2026")
    login("new.person", "password-2026", expect=401)


def test_a_return_reason_and_a_progress_note_arrive_clean(app, login, one_part_task):
    from models import ProgressNote, Submission

    task_id, part_id, base = one_part_task.task_id, one_part_task.part_id, one_part_task.base
    staff, leader = login(one_part_task.part_staff), login(one_part_task.lead_leader)
    act(staff, task_id, f"{base}/start")
    # A multi-line field keeps its lines (CRLF becomes LF), loses the override and the bell.
    act(staff, task_id, f"{base}/progress", percent="50", note=f"第一行{RLO}完成\r\n第二行{BEL}")
    act(staff, task_id, f"{base}/evidence", text="会议纪要")
    act(staff, task_id, f"{base}/submit", statement="已完成。")
    response = act(leader, task_id, f"{base}/return", reason=f"{RLO}缺少验收材料{BEL}，请补充。")
    assert response.status_code == 200
    with app.app_context():
        note = db.session.scalar(select(ProgressNote.note).where(ProgressNote.part_id == part_id))
        assert note == "第一行完成\n第二行"
        reasons = db.session.scalars(select(Submission.decision_reason).where(Submission.part_id == part_id)).all()
        assert reasons == ["缺少验收材料，请补充。"]


def test_clean_text_removes_what_changes_the_display_and_reports_only_that():
    from workflow.text import clean_line, clean_text, display_changing

    assert clean_text("区\u202e财政\u200b局\x07\r\n第二行") == "区财政局\n第二行"
    assert clean_line("区财政局\n\t办公室") == "区财政局  办公室"
    assert display_changing("区\u202e财政\u200b局\x07") == ["\u202e", "\x07"]   # zero-width noise is not reported
    assert clean_text(None) is None
