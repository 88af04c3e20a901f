"""The office's bulk actions: 批量催办 and 提醒签收 from the task list, 提醒签收 from the
待签收 page — all or nothing, audited per task / part, the office's only."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.helpers import csrf, row_counts, unit_username
from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "seed"


def _models():
    from models import AuditEntry, Notification, TaskPart

    return AuditEntry, Notification, TaskPart


def _counts():
    """Rows that a bulk action writes (signing in writes its own audit entry, not counted)."""
    counts = row_counts(db, *_models())
    counts["AuditEntry"] -= len(_entries("login"))
    return counts


def _open_tasks(n: int):
    """The first ``n`` seed tasks (by id) whose parts are all planned and not received."""
    from models import Task
    from workflow.vocabulary import PLANNED

    found = [t for t in db.session.scalars(select(Task).order_by(Task.id))
             if t.parts and all(p.state == PLANNED and p.received_at is None for p in t.parts)]
    assert len(found) >= n
    return found[:n]


def _post_bulk(client, **fields):
    page = client.get("/tasks/")
    return client.post("/tasks/bulk", data={"csrf_token": csrf(page.text), "next": "/tasks/", **fields},
                       follow_redirects=True)


def _post_remind(client, **fields):
    page = client.get("/tasks/unreceived")
    return client.post("/tasks/unreceived/remind", data={"csrf_token": csrf(page.text), **fields},
                       follow_redirects=True)


def _entries(action: str):
    from models import AuditEntry

    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)).all()




# ---------------------------------------------------------------- markup

def test_task_list_has_row_boxes_select_all_and_the_three_buttons_for_the_office(app, login):
    with app.app_context():
        first = _open_tasks(1)[0].id
    html = login("office").get("/tasks/").text
    form = re.search(r'<form method="post" action="/tasks/bulk" id="bulk-tasks".*?</form>', html, re.S).group(0)
    assert 'name="csrf_token"' in form
    assert 'name="action" value="urge"' in form and "批量催办" in form
    assert 'name="action" value="remind"' in form and "提醒签收" in form
    # 发起调度 posts the same ticked boxes to the rounds page (built by another change).
    assert re.search(r'<button type="submit" formaction="/rounds/new"[^>]*>发起调度</button>', form)
    assert f'name="task_ids" value="{first}" form="bulk-tasks"' in html
    assert 'data-select-all="bulk-tasks"' in html and "select-all.js" in html


@pytest.mark.parametrize("username", ["viewer", "u02.staff"])
def test_task_list_has_no_bulk_form_for_others(app, login, username):
    from models import User

    with app.app_context():
        if db.session.scalar(select(User).where(User.username == username)) is None:
            username = db.session.scalar(select(User.username).where(User.role == "viewer"))
    html = login(username).get("/tasks/").text
    assert "/tasks/bulk" not in html and 'name="task_ids"' not in html and "发起调度" not in html


# ---------------------------------------------------------------- 批量催办

def test_bulk_urge_urges_every_selected_task_with_one_audit_entry_each(app, login):
    with app.app_context():
        tasks = _open_tasks(3)
        ids = [t.id for t in tasks]
        units = {t.id: {p.unit_id for p in t.parts} for t in tasks}
        before = _counts()
    r = _post_bulk(login("office"), action="urge", task_ids=ids, message="请本周内报送进展")
    assert "已催办 3 项任务" in r.text
    with app.app_context():
        from models import Notification

        entries = _entries("urge")
        # One entry per part urged (every part of these tasks is still open).
        assert list(dict.fromkeys(e.task_id for e in entries)) == ids
        from models import TaskPart

        unit_of = {p.id: p.unit_id for p in db.session.scalars(select(TaskPart).where(TaskPart.task_id.in_(ids)))}
        assert {(e.task_id, unit_of[e.part_id]) for e in entries} == {(t, u) for t in ids for u in units[t]}
        assert all(e.reason == "请本周内报送进展" for e in entries)
        after = _counts()
        assert after["AuditEntry"] == before["AuditEntry"] + sum(len(u) for u in units.values())
        for task_id in ids:
            notes = db.session.scalars(select(Notification).where(Notification.task_id == task_id,
                                                                  Notification.kind == "urged")).all()
            assert notes and {n.user.unit_id for n in notes} == units[task_id]


def test_bulk_urge_refuses_the_whole_batch_when_a_task_has_nothing_to_urge(app, login):
    from workflow.vocabulary import SUBMITTED

    with app.app_context():
        open_one, done = _open_tasks(2)
        for p in done.parts:
            p.state = SUBMITTED
        db.session.commit()
        ids, done_label = [open_one.id, done.id], done.number_label
        before = _counts()
    r = _post_bulk(login("office"), action="urge", task_ids=ids)
    assert "本次未催办任何任务" in r.text and done_label in r.text
    with app.app_context():
        assert _counts() == before


def test_bulk_urge_is_one_transaction(app, login, monkeypatch):
    """A failure on the second task leaves nothing of the first."""
    from workflow import services

    with app.app_context():
        ids = [t.id for t in _open_tasks(2)]
        before = _counts()
    real, calls = services.urge, []

    def failing(task, user, message=None):
        calls.append(task.id)
        if len(calls) == 2:
            raise services.Refused("模拟失败")
        return real(task, user, message)

    monkeypatch.setattr(services, "urge", failing)
    r = _post_bulk(login("office"), action="urge", task_ids=ids)
    assert "模拟失败" in r.text and calls == ids
    with app.app_context():
        assert _counts() == before


# ---------------------------------------------------------------- 提醒签收

def test_remind_notifies_each_unit_once_and_audits_each_part(app, login):
    from models import Notification, TaskPart, User
    from workflow.vocabulary import NotificationKind

    with app.app_context():
        tasks = _open_tasks(40)
        by_unit: dict[int, list] = {}
        for t in tasks:
            for p in t.parts:
                by_unit.setdefault(p.unit_id, []).append(p.id)
        unit_id, two = next((u, ids[:2]) for u, ids in by_unit.items() if len(ids) >= 2)
        other_unit, one = next((u, ids[:1]) for u, ids in by_unit.items() if u != unit_id)
        part_ids = two + one
        users = {u: {x.id for x in db.session.scalars(select(User).where(User.unit_id == u, User.active.is_(True)))}
                 for u in (unit_id, other_unit)}
        before = _counts()
    r = _post_remind(login("office"), part=part_ids, message="请于今日签收")
    assert "已提醒 2 个单位签收" in r.text
    with app.app_context():
        notes = db.session.scalars(select(Notification).where(
            Notification.kind == NotificationKind.RECEIPT_REMIND)).all()
        for u in (unit_id, other_unit):
            mine = [n for n in notes if n.user_id in users[u]]
            # Each user of the unit: one notice, whatever the number of parts.
            assert sorted(n.user_id for n in mine) == sorted(users[u])
        two_parts = [n for n in notes if n.user_id in users[unit_id]][0]
        assert two_parts.message.startswith("办公室提醒签收：2 项任务尚未签收") and "请于今日签收" in two_parts.message
        entries = _entries("receipt_reminded")
        assert sorted(e.part_id for e in entries) == sorted(part_ids)
        assert all(e.reason == "请于今日签收" for e in entries)
        after = _counts()
        assert after["AuditEntry"] == before["AuditEntry"] + 3
        # Reminding changes no part.
        assert all(db.session.get(TaskPart, i).received_at is None for i in part_ids)


def test_remind_refuses_the_batch_when_a_part_is_already_received(app, login):
    from workflow.timeutil import utcnow

    with app.app_context():
        a, b = _open_tasks(2)
        b.parts[0].received_at = utcnow()
        db.session.commit()
        ids = [a.parts[0].id, b.parts[0].id]
        label = b.number_label
        before = _counts()
    r = _post_remind(login("office"), part=ids)
    assert "本次未发送任何提醒" in r.text and label in r.text
    with app.app_context():
        assert _counts() == before


def test_remind_from_the_task_list_reaches_the_parts_not_received(app, login):
    from workflow.timeutil import utcnow

    with app.app_context():
        task = next(t for t in _open_tasks(60) if len(t.parts) >= 2)
        task.parts[0].received_at = utcnow()
        db.session.commit()
        waiting = sorted(p.id for p in task.parts[1:])
        task_id = task.id
    r = _post_bulk(login("office"), action="remind", task_ids=[task_id])
    assert "个单位签收" in r.text
    with app.app_context():
        assert sorted(e.part_id for e in _entries("receipt_reminded")) == waiting


def test_remind_from_the_task_list_names_tasks_with_nothing_to_remind(app, login):
    from workflow.timeutil import utcnow

    with app.app_context():
        a, b = _open_tasks(2)
        for p in b.parts:
            p.received_at = utcnow()
        db.session.commit()
        ids, label = [a.id, b.id], b.number_label
        before = _counts()
    r = _post_bulk(login("office"), action="remind", task_ids=ids)
    assert "本次未发送任何提醒" in r.text and label in r.text
    with app.app_context():
        assert _counts() == before


# ---------------------------------------------------------------- refusals

def _viewer(app) -> str:
    from models import User

    with app.app_context():
        return db.session.scalar(select(User.username).where(User.role == "viewer"))


@pytest.mark.parametrize("who", ["unit_leader", "viewer"])
def test_bulk_actions_are_forbidden_to_others_and_change_nothing(app, login, who):
    with app.app_context():
        task = _open_tasks(1)[0]
        username = unit_username(task.parts[0].unit_id, "leader") if who == "unit_leader" else None
        task_id, part_id = task.id, task.parts[0].id
        before = _counts()
    username = username or _viewer(app)
    client = login(username)
    token = csrf(client.get("/tasks/").text)
    for action in ("urge", "remind"):
        r = client.post("/tasks/bulk", data={"csrf_token": token, "action": action, "task_ids": [task_id]})
        assert r.status_code == 403
    r = client.post("/tasks/unreceived/remind", data={"csrf_token": token, "part": [part_id]})
    assert r.status_code == 403
    with app.app_context():
        assert _counts() == before


@pytest.mark.parametrize("forged", [["999999"], ["abc"], ["-1"], ["2147483648"]])
def test_forged_ids_are_refused_with_a_message_and_change_nothing(app, login, forged):
    with app.app_context():
        real = str(_open_tasks(1)[0].id)
        real_part = str(_open_tasks(1)[0].parts[0].id)
        before = _counts()
    client = login("office")
    r = _post_bulk(client, action="urge", task_ids=[real] + forged)
    assert r.status_code == 200 and ("所选任务不存在" in r.text or "所选任务无效" in r.text)
    r = _post_remind(client, part=[real_part] + forged)
    assert r.status_code == 200 and ("所选任务不存在" in r.text or "所选任务无效" in r.text)
    with app.app_context():
        assert _counts() == before


def test_bulk_without_csrf_or_selection_changes_nothing(app, login):
    with app.app_context():
        task_id = _open_tasks(1)[0].id
        before = _counts()
    client = login("office")
    assert client.post("/tasks/bulk", data={"action": "urge", "task_ids": [task_id]}).status_code == 400
    assert client.post("/tasks/unreceived/remind", data={"part": [task_id]}).status_code == 400
    r = _post_bulk(client, action="urge")
    assert "请至少选择一项任务" in r.text
    r = _post_bulk(client, action="delete", task_ids=[task_id])
    assert "请选择要执行的批量操作" in r.text
    r = _post_remind(client)
    assert "请至少选择一项尚未签收的任务" in r.text
    with app.app_context():
        assert _counts() == before


def test_unreceived_page_has_the_remind_form_for_the_office_only(app, login):
    html = login("office").get("/tasks/unreceived").text
    form = re.search(r'<form method="post" action="/tasks/unreceived/remind".*?</form>', html, re.S).group(0)
    assert 'name="csrf_token"' in form and "提醒签收" in form
    assert re.search(r'name="part" value="\d+" form="bulk-remind"', html)
    viewer = login(_viewer(app)).get("/tasks/unreceived").text
    assert "/tasks/unreceived/remind" not in viewer and 'form="bulk-remind"' not in viewer
