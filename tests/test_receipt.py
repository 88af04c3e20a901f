"""签收 (receipt): the event on the task page, the office's START_WITHOUT_RECEIPT
setting both ways, 全部签收 on the to-do page (all or nothing), the office's
list of parts not yet received, and the new receipt asked for after an edit."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from auth.permissions import can
from models import AuditEntry, Notification, Plan, TaskPart, User
from tests.helpers import csrf, unit_user, unit_username
from workflow import machine, services
from workflow.extensions import db
from workflow.services import Forbidden, Refused
from workflow.vocabulary import IN_PROGRESS, PLANNED, SUBMITTED, VERIFIED, NotificationKind


@pytest.fixture
def db_template():
    return "seed"


def post(client, task_id: int, path: str, **fields):
    page = client.get(f"/tasks/{task_id}")
    version = re.search(r'action="%s"[^>]*>.*?name="version" value="(\d+)"' % re.escape(path), page.text, re.S)
    data = {"csrf_token": csrf(page.text), "version": version.group(1) if version else "0", **fields}
    return client.post(path, data=data, follow_redirects=True)


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
