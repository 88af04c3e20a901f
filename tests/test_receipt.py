"""签收 (receipt): the event on the task page, the office's START_WITHOUT_RECEIPT
setting both ways, 全部签收 on the to-do page (all or nothing), the office's
list of parts not yet received, and the new receipt asked for after an edit."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from auth.permissions import can
from models import AuditEntry, Notification, Plan, TaskPart, User
from tests.helpers import csrf, post_on_task_page, unit_user
from workflow import machine, services
from workflow.extensions import db
from workflow.services import Refused
from workflow.timeutil import today_local
from workflow.vocabulary import IN_PROGRESS, PLANNED, SUBMITTED, VERIFIED, NotificationKind


@pytest.fixture
def db_template():
    return "seed"


post = post_on_task_page


def _count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- the event

def test_receiving_a_part_records_who_and_when_is_audited_and_sends_no_notice(app, login, one_part_task):
    task_id, part_id, base = one_part_task.task_id, one_part_task.part_id, one_part_task.base
    staff = login(one_part_task.part_staff)
    page = staff.get(f"/tasks/{task_id}").text
    assert f'action="{base}/receive"' in page and "尚未签收" not in page
    # Someone who may not receive it sees no button, and a forged POST is a 403 that changes nothing.
    office = login("office")
    office_page = office.get(f"/tasks/{task_id}").text
    assert f'action="{base}/receive"' not in office_page and "尚未签收" in office_page
    assert office.post(f"{base}/receive", data={"csrf_token": csrf(office_page), "version": "1"}).status_code == 403
    with app.app_context():
        notices_before = _count(Notification)
        assert db.session.get(TaskPart, part_id).received_at is None

    done = post(staff, task_id, f"{base}/receive")
    assert "已签收。" in done.text
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        staff_user = db.session.scalar(select(User).where(User.username == one_part_task.part_staff))
        assert part.state == PLANNED and part.received_by_id == staff_user.id
        assert abs(part.received_at - datetime.utcnow()) < timedelta(minutes=1)
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.part_id == part_id)
                                   .order_by(AuditEntry.seq.desc())).first()
        assert entry.action == "transition" and entry.details["event"] == "receive"
        assert (entry.from_state, entry.to_state) == (PLANNED, PLANNED)
        assert _count(Notification) == notices_before
        name = staff_user.display_name
    page = staff.get(f"/tasks/{task_id}").text
    assert f"已签收：{name}" in page and f'action="{base}/receive"' not in page
    assert "<strong>签收</strong>" in page          # the timeline names the event
    # A second receipt is refused with the reason and changes nothing.
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        version = part.version
        with pytest.raises(Refused) as info:
            services.receive_part(part, staff_user)
        assert "已签收" in info.value.message
        db.session.rollback()
        assert db.session.get(TaskPart, part_id).version == version


# ---------------------------------------------------------------- the setting, both ways

SERVICE_FOR_EVENT = {
    "part.receive": services.receive_part,
    "part.start": services.start_part,
}


@pytest.mark.parametrize("allowed", [True, False], ids=["start_without_receipt", "receipt_first"])
@pytest.mark.parametrize("action", sorted(SERVICE_FOR_EVENT))
def test_the_button_shows_exactly_when_the_service_accepts(app, one_part_task, action, allowed):
    app.config["START_WITHOUT_RECEIPT"] = allowed
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        actor = db.session.scalar(select(User).where(User.username == one_part_task.part_staff))
        cases = 0
        for state in (PLANNED, IN_PROGRESS, SUBMITTED, VERIFIED):
            for received in (False, True):
                savepoint = db.session.begin_nested()
                part.state = state
                part.received_at = datetime(2022, 4, 1) if received else None
                shown = can(actor, action, part)
                try:
                    SERVICE_FOR_EVENT[action](part, actor)
                    accepted = True
                except Refused:
                    accepted = False
                savepoint.rollback()
                assert shown == accepted, (action, state, received)
                cases += accepted
        # Receipt: only a planned part not yet received. Start: planned, and received unless allowed.
        assert cases == (1 if action == "part.receive" else (2 if allowed else 1))


def test_with_receipt_first_the_page_offers_receipt_then_start(app, login, one_part_task):
    app.config["START_WITHOUT_RECEIPT"] = False
    task_id, part_id, base = one_part_task.task_id, one_part_task.part_id, one_part_task.base
    staff = login(one_part_task.part_staff)
    page = staff.get(f"/tasks/{task_id}").text
    assert f'action="{base}/start"' not in page and f'action="{base}/receive"' in page
    assert "签收后方可开始办理" in page
    # A forged start is refused with the Chinese reason and changes nothing.
    forged = staff.post(f"{base}/start", data={"csrf_token": csrf(page), "version": "1"}, follow_redirects=True)
    assert "请先签收该任务，再开始办理。" in forged.text
    with app.app_context():
        assert db.session.get(TaskPart, part_id).state == PLANNED
    post(staff, task_id, f"{base}/receive")
    page = staff.get(f"/tasks/{task_id}").text
    assert f'action="{base}/start"' in page
    assert "已开始办理" in post(staff, task_id, f"{base}/start").text


def test_by_default_work_starts_without_receipt(app, login, one_part_task):
    assert app.config["START_WITHOUT_RECEIPT"] is True
    staff = login(one_part_task.part_staff)
    page = staff.get(f"/tasks/{one_part_task.task_id}").text
    assert f'action="{one_part_task.base}/start"' in page and f'action="{one_part_task.base}/receive"' in page


# ---------------------------------------------------------------- 全部签收

def _unit_parts(unit_id):
    return db.session.scalars(select(TaskPart).where(TaskPart.unit_id == unit_id, TaskPart.state == PLANNED)
                              .order_by(TaskPart.id)).all()


def _receipts(unit_id):
    return {p.id: p.received_at is not None for p in
            db.session.scalars(select(TaskPart).where(TaskPart.unit_id == unit_id))}


def test_receive_all_on_the_todo_page_is_one_entry_per_part(app, login, one_part_task):
    unit_id = one_part_task.part_unit_id
    with app.app_context():
        mine = [p.id for p in _unit_parts(unit_id)]
        audit_before = _count(AuditEntry, AuditEntry.action == "transition")
    assert len(mine) >= 2
    staff = login(one_part_task.part_staff)
    page = staff.get("/tasks/todo").text
    assert "全部签收" in page and "尚未签收。" in page
    assert len(re.findall(r'type="checkbox" name="part" value="(\d+)" form="bulk-receive"', page)) == min(
        len(mine), app.config["PER_PAGE"])
    done = staff.post("/tasks/todo/receive", data={"csrf_token": csrf(page), "scope": "all"}, follow_redirects=True)
    assert f"已签收 {len(mine)} 项任务。" in done.text
    with app.app_context():
        assert all(_receipts(unit_id)[i] for i in mine)
        entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "transition")
                                     .order_by(AuditEntry.seq)).all()[audit_before:]
        assert sorted(e.part_id for e in entries) == sorted(mine)
        assert {e.details["event"] for e in entries} == {"receive"}
    page = staff.get("/tasks/todo").text
    assert "全部签收" not in page and 'name="part"' not in page
    # Nothing left: "all" says so and changes nothing.
    again = staff.post("/tasks/todo/receive", data={"csrf_token": csrf(page), "scope": "all"}, follow_redirects=True)
    assert "本单位没有待签收的任务。" in again.text


def test_receiving_a_selection_is_all_or_nothing(app, login, one_part_task):
    unit_id = one_part_task.part_unit_id
    with app.app_context():
        first, second, *rest = [p.id for p in _unit_parts(unit_id)]
        other = db.session.scalar(select(TaskPart).where(TaskPart.unit_id != unit_id, TaskPart.state == PLANNED))
        other_id, other_label = other.id, f"{other.task.number_label}（{other.unit.name}）"
        staff_user = unit_user(unit_id, "staff")
        services.receive_part(db.session.get(TaskPart, second), staff_user)
        db.session.commit()
        second_label = f"{db.session.get(TaskPart, second).task.number_label}（"
        before = _receipts(unit_id)
        audit_before = _count(AuditEntry, AuditEntry.action != "login")
    staff = login(one_part_task.part_staff)
    token = csrf(staff.get("/tasks/todo").text)

    # An already-received part and another unit's part refuse the whole batch, by name.
    for ids, named in (([first, second], second_label), ([first, other_id], other_label)):
        refused = staff.post("/tasks/todo/receive", data={"csrf_token": token, "scope": "selected",
                                                          "part": [str(i) for i in ids]}, follow_redirects=True)
        assert "本次未签收任何任务" in refused.text and named in refused.text
        with app.app_context():
            assert _receipts(unit_id) == before and _count(AuditEntry, AuditEntry.action != "login") == audit_before
    # Bad input: nothing selected, a made-up id, garbage.
    for fields, message in (({}, "请至少选择一项待签收的任务。"), ({"part": "999999"}, "所选任务不存在"),
                            ({"part": "x"}, "所选任务无效")):
        response = staff.post("/tasks/todo/receive", data={"csrf_token": token, "scope": "selected", **fields},
                              follow_redirects=True)
        assert response.status_code == 200 and message in response.text
    with app.app_context():
        assert _receipts(unit_id) == before and _count(AuditEntry, AuditEntry.action != "login") == audit_before
    # Without CSRF: refused.
    assert staff.post("/tasks/todo/receive", data={"scope": "all"}).status_code == 400

    ok = staff.post("/tasks/todo/receive", data={"csrf_token": token, "scope": "selected", "part": [str(first)]},
                    follow_redirects=True)
    assert "已签收 1 项任务。" in ok.text
    with app.app_context():
        assert _receipts(unit_id)[first] and _count(AuditEntry, AuditEntry.action != "login") == audit_before + 1


def test_the_office_cannot_receive_in_bulk(app, login):
    office = login("office")
    token = csrf(office.get("/tasks/todo").text)
    assert office.post("/tasks/todo/receive", data={"csrf_token": token, "scope": "all"}).status_code == 403
    with app.app_context():
        office_user = db.session.scalar(select(User).where(User.username == "office"))
        part = db.session.scalar(select(TaskPart).where(TaskPart.state == PLANNED))
        with pytest.raises(Refused):
            services.receive_parts([part], office_user)
        db.session.rollback()


# ---------------------------------------------------------------- who has not acknowledged

def test_the_office_list_counts_days_since_import_in_china_time(app, login, one_part_task):
    from workflow import queries

    app.config["RECEIPT_DUE_DAYS"] = 3
    with app.app_context():
        plan = db.session.scalar(select(Plan))
        total = queries.count_of(queries.unreceived_parts())
        # 2022-09-26 17:30 UTC is 2022-09-27 01:30 in Beijing: three days before the 30th (four by UTC dates).
        plan.imported_at = datetime(2022, 9, 26, 17, 30)
        assert queries.days_since_import(plan, date(2022, 9, 30)) == 3
        # A demo clock before the import (LUOSHI_TODAY) reads 0 days, never a negative count.
        assert queries.days_since_import(plan, date(2022, 9, 1)) == 0
        assert queries.unreceived_counts(date(2022, 9, 30), 3) == (total, 0)     # 3 days is not "older than 3"
        assert queries.unreceived_counts(date(2022, 9, 30), 2) == (total, total)
        assert queries.unreceived_counts(date(2022, 10, 1), 3) == (total, total)
        db.session.commit()
        services.receive_part(db.session.get(TaskPart, one_part_task.part_id),
                              unit_user(one_part_task.part_unit_id, "staff"))
        db.session.commit()
        assert queries.count_of(queries.unreceived_parts()) == total - 1
        days = queries.days_since_import(plan, today_local())
    office = login("office")
    page = office.get("/tasks/unreceived").text
    assert f"共 <strong>{total - 1}</strong> 项" in page and f"{days} 天" in page and "超期未签收" in page
    assert f'#part-{one_part_task.part_id}"' not in page
    overview = office.get("/overview").text
    assert f'href="/tasks/unreceived">尚未签收 <strong>{total - 1}</strong> 项' in overview
    assert 'href="/tasks/unreceived"' in office.get("/tasks/todo").text
    # Viewers see it too; units do not.
    assert login("leader").get("/tasks/unreceived").status_code == 200
    assert login(one_part_task.part_staff).get("/tasks/unreceived").status_code == 403


# ---------------------------------------------------------------- an edit asks for a new receipt

def test_editing_text_or_deadline_clears_receipts_and_notifies(app, one_part_task):
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        task = part.task
        staff_user = unit_user(part.unit_id, "staff")
        office = db.session.scalar(select(User).where(User.username == "office"))
        services.receive_part(part, staff_user)
        db.session.commit()
        # An edit that changes nothing keeps the receipt.
        services.edit_task(task, office, text=task.text)
        db.session.commit()
        assert part.received_at is not None

        services.edit_task(task, office, text=task.text + "（补充）")
        db.session.commit()
        assert (part.received_at, part.received_by_id) == (None, None)
        notice = db.session.scalars(select(Notification).where(Notification.user_id == staff_user.id)
                                    .order_by(Notification.id.desc())).first()
        assert notice.kind == NotificationKind.RECEIPT_RESET and "任务内容或时限已修改，请重新签收" in notice.message
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "task_edited")
                                   .order_by(AuditEntry.seq.desc())).first()
        assert entry.details["receipts_cleared"] == [part.unit.name]
        assert machine.refusal("part.receive", part) is None

        services.receive_part(part, staff_user)
        db.session.commit()
        services.edit_task(task, office, deadline=date(2030, 6, 30))
        db.session.commit()
        assert part.received_at is None


def test_a_started_part_keeps_its_receipt_after_an_edit(app, one_part_task):
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        staff_user = unit_user(part.unit_id, "staff")
        office = db.session.scalar(select(User).where(User.username == "office"))
        services.receive_part(part, staff_user)
        services.start_part(part, staff_user)
        db.session.commit()
        notices = _count(Notification, Notification.kind == NotificationKind.RECEIPT_RESET)
        services.edit_task(part.task, office, text="新的任务内容")
        db.session.commit()
        assert part.received_at is not None
        assert _count(Notification, Notification.kind == NotificationKind.RECEIPT_RESET) == notices
