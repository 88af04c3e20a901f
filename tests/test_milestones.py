"""序时进度节点 (milestones): set by the office, proposed by the part's unit and
decided by the lead unit's leader; validated (dates inside the line, 1–99%,
rising); their effect on ``pace.assess_parts``' planned progress; the red latch
when the line moves; forbidden and stale posts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Milestone, Notification, Task, TaskPart
from tests.helpers import csrf, lead_owns_part, post_on_task_page, unit_username, user_named
from workflow import extension_services, pace, services
from workflow.extensions import db
from workflow.services import STALE_MESSAGE
from workflow.timeutil import today_local
from workflow.vocabulary import MilestoneState, WarningLevel


@pytest.fixture
def db_template():
    return "seed"


post = post_on_task_page
DAYS = 100


def _prepare(app, one_part_task):
    """The part received and started today (its line starts today), due in DAYS days."""
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        task.deadline = today_local() + timedelta(days=DAYS)
        staff = user_named(one_part_task.part_staff)
        services.receive_part(task.parts[0], staff)
        services.start_part(task.parts[0], staff)
        db.session.commit()


def _day(n: int) -> str:
    return (today_local() + timedelta(days=n)).isoformat()


def _planned(app, part_id: int, days_from_today: int) -> int:
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        return pace.assess_parts([part], today_local() + timedelta(days=days_from_today))[part.id].planned


def _milestones(app, part_id: int) -> list:
    with app.app_context():
        return [(m.on.isoformat(), m.percent, m.state) for m in db.session.scalars(
            select(Milestone).where(Milestone.part_id == part_id).order_by(Milestone.on, Milestone.id))]


def _audit_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action != "login"))


def _set(client, one_part_task, rows):
    fields = {"mode": "set", "on": [r[0] for r in rows], "percent": [str(r[1]) for r in rows],
              "note": [r[2] if len(r) > 2 else "" for r in rows]}
    return post(client, one_part_task.task_id, f"{one_part_task.base}/milestones", **fields)


def test_the_office_sets_milestones_and_planned_progress_follows_them(app, login, one_part_task):
    _prepare(app, one_part_task)
    assert _planned(app, one_part_task.part_id, 25) == 25           # a straight line from today to the deadline
    office = login("office")
    page = office.get(f"/tasks/{one_part_task.task_id}").text
    assert f'action="{one_part_task.base}/milestones"' in page and "设置进度节点" in page
    done = _set(office, one_part_task, [(_day(50), 80, "完成主体工程"), ("", "", "")])
    assert "进度节点已设置" in done.text
    assert _milestones(app, one_part_task.part_id) == [(_day(50), 80, MilestoneState.APPROVED)]
    # 80% by day 50: 40% at day 25, then 80 → 100 over the last 50 days.
    assert _planned(app, one_part_task.part_id, 25) == 40
    assert _planned(app, one_part_task.part_id, 75) == 90
    page = login(one_part_task.part_staff).get(f"/tasks/{one_part_task.task_id}").text
    assert "完成 80%：完成主体工程" in page and "已确认" in page
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "milestones_set")).one()
        assert entry.details["milestones"] == [f"{_day(50)} 80%（完成主体工程）"]
        staff = user_named(one_part_task.part_staff)
        assert db.session.scalar(select(func.count(Notification.id)).where(
            Notification.user_id == staff.id, Notification.kind == "milestone")) == 1

    # Setting again replaces them; an empty form clears the line back to straight.
    _set(office, one_part_task, [(_day(20), 10), (_day(60), 50)])
    assert [m[:2] for m in _milestones(app, one_part_task.part_id)] == [(_day(20), 10), (_day(60), 50)]
    assert _planned(app, one_part_task.part_id, 40) == 30
    _set(office, one_part_task, [("", "", "")])
    assert _milestones(app, one_part_task.part_id) == []
    assert _planned(app, one_part_task.part_id, 25) == 25


@pytest.mark.parametrize("rows,message", [
    ([(-1, 30)], "须晚于该任务序时进度的起算日"),
    ([(0, 30)], "须晚于该任务序时进度的起算日"),
    ([(DAYS, 30)], "须早于现行完成时限"),
    ([(DAYS + 5, 30)], "须早于现行完成时限"),
    ([(30, 0)], "1 到 99 之间"),
    ([(30, 100)], "1 到 99 之间"),
    ([(30, 50), (60, 50)], "须随日期递增"),
    ([(60, 40), (30, 50)], "须随日期递增"),
    ([(30, 20), (30, 40)], "同一天只能设一个"),
])
def test_a_line_that_is_not_one_is_refused_and_nothing_changes(app, login, one_part_task, rows, message):
    _prepare(app, one_part_task)
    office = login("office")
    _set(office, one_part_task, [(_day(10), 5)])
    before, audit = _milestones(app, one_part_task.part_id), _audit_count(app)
    response = _set(office, one_part_task, [(_day(d), p) for d, p in rows])
    assert message in response.text
    assert _milestones(app, one_part_task.part_id) == before and _audit_count(app) == audit


@pytest.mark.parametrize("on,percent,message", [
    ("2026-02-30", "30", "日期无效"), ("", "30", "请填写第 1 个节点的日期"), ("{d}", "三十", "1 到 99 之间的整数"),
    ("{d}", "-5", "1 到 99 之间的整数"),
])
def test_malformed_rows_get_a_chinese_message(app, login, one_part_task, on, percent, message):
    _prepare(app, one_part_task)
    office = login("office")
    audit = _audit_count(app)
    response = post(office, one_part_task.task_id, f"{one_part_task.base}/milestones", mode="set",
                    on=[on.format(d=_day(30))], percent=[percent], note=[""])
    assert response.status_code == 200 and message in response.text
    assert _milestones(app, one_part_task.part_id) == [] and _audit_count(app) == audit


def test_a_unit_proposes_and_the_lead_leader_decides(app, login, one_part_task):
    _prepare(app, one_part_task)
    staff, lead = login(one_part_task.part_staff), login(one_part_task.lead_leader)
    base = one_part_task.base
    page = staff.get(f"/tasks/{one_part_task.task_id}").text
    assert "提出进度节点" in page and "设置进度节点（办公室）" not in page
    assert "进度节点已提出" in post(staff, one_part_task.task_id, f"{base}/milestones", mode="propose",
                                 on=_day(50), percent="80", note="主体完工").text
    assert _milestones(app, one_part_task.part_id) == [(_day(50), 80, MilestoneState.PROPOSED)]
    assert _planned(app, one_part_task.part_id, 25) == 25           # not counted until approved
    with app.app_context():
        milestone_id = db.session.scalar(select(Milestone.id))
        leader = user_named(one_part_task.lead_leader)
        assert db.session.scalar(select(func.count(Notification.id)).where(
            Notification.user_id == leader.id, Notification.kind == "milestone")) == 1
    assert f'action="/milestones/{milestone_id}/approve"' not in page
    assert f'action="/milestones/{milestone_id}/approve"' in lead.get(f"/tasks/{one_part_task.task_id}").text

    assert "请填写理由" in post(lead, one_part_task.task_id, f"/milestones/{milestone_id}/refuse", reason="").text
    assert _milestones(app, one_part_task.part_id)[0][2] == MilestoneState.PROPOSED
    assert "已确认该进度节点" in post(lead, one_part_task.task_id, f"/milestones/{milestone_id}/approve").text
    assert _milestones(app, one_part_task.part_id) == [(_day(50), 80, MilestoneState.APPROVED)]
    assert _planned(app, one_part_task.part_id, 25) == 40
    # Decided once: a second decision is refused by the state.
    with app.app_context():
        version = db.session.get(TaskPart, one_part_task.part_id).version
    again = lead.post(f"/milestones/{milestone_id}/refuse", follow_redirects=True,
                      data={"csrf_token": csrf(lead.get("/auth/password").text), "version": version,
                            "reason": "改主意"})
    assert "不能执行“不同意节点”" in again.text

    # A proposal below the approved line, or refused with its reason.
    assert "须随日期递增" in post(staff, one_part_task.task_id, f"{base}/milestones", mode="propose",
                               on=_day(70), percent="60").text
    post(staff, one_part_task.task_id, f"{base}/milestones", mode="propose", on=_day(70), percent="90")
    with app.app_context():
        second = db.session.scalar(select(Milestone.id).where(Milestone.state == MilestoneState.PROPOSED))
    assert "已不同意该进度节点" in post(lead, one_part_task.task_id, f"/milestones/{second}/refuse",
                                    reason="节奏过慢。").text
    with app.app_context():
        refused = db.session.get(Milestone, second)
        assert (refused.state, refused.decision_reason) == (MilestoneState.REFUSED, "节奏过慢。")
        actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("milestone%"))
                                     .order_by(AuditEntry.seq)).all()
        assert actions == ["milestone_proposed", "milestone_approved", "milestone_proposed", "milestone_refused"]
    assert _planned(app, one_part_task.part_id, 25) == 40
    assert "节奏过慢。" in staff.get(f"/tasks/{one_part_task.task_id}").text


@lead_owns_part
def test_the_proposer_who_leads_the_task_cannot_approve_their_own(app, login, one_part_task):
    _prepare(app, one_part_task)
    boss = login(one_part_task.lead_leader)
    post(boss, one_part_task.task_id, f"{one_part_task.base}/milestones", mode="propose", on=_day(40), percent="50")
    with app.app_context():
        milestone_id = db.session.scalar(select(Milestone.id))
        version = db.session.get(TaskPart, one_part_task.part_id).version
    page = boss.get(f"/tasks/{one_part_task.task_id}").text
    assert f'action="/milestones/{milestone_id}/approve"' not in page
    forged = boss.post(f"/milestones/{milestone_id}/approve", data={"csrf_token": csrf(page), "version": version})
    assert forged.status_code == 403 and "本人提出的申请" in forged.text
    assert _milestones(app, one_part_task.part_id)[0][2] == MilestoneState.PROPOSED


def test_forbidden_milestone_posts_are_403_and_change_nothing(app, login, one_part_task):
    _prepare(app, one_part_task)
    staff = login(one_part_task.part_staff)
    post(staff, one_part_task.task_id, f"{one_part_task.base}/milestones", mode="propose", on=_day(40), percent="50")
    with app.app_context():
        milestone_id = db.session.scalar(select(Milestone.id))
        version = db.session.get(TaskPart, one_part_task.part_id).version
    lead_staff = unit_username(one_part_task.lead_unit_id, "staff")
    cells = [(one_part_task.part_staff, f"{one_part_task.base}/milestones", {"mode": "set"}),
             (one_part_task.lead_leader, f"{one_part_task.base}/milestones", {"mode": "set"}),
             (one_part_task.lead_leader, f"{one_part_task.base}/milestones", {"mode": "propose"}),
             ("office", f"{one_part_task.base}/milestones", {"mode": "propose"}),
             ("leader", f"{one_part_task.base}/milestones", {"mode": "set"}),
             (one_part_task.part_leader, f"/milestones/{milestone_id}/approve", {}),
             (lead_staff, f"/milestones/{milestone_id}/approve", {}),
             ("office", f"/milestones/{milestone_id}/approve", {}),
             ("leader", f"/milestones/{milestone_id}/refuse", {"reason": "x"})]
    for username, path, fields in cells:
        client = login(username)
        before, audit = _milestones(app, one_part_task.part_id), _audit_count(app)
        response = client.post(path, data={"csrf_token": csrf(client.get("/auth/password").text), "version": version,
                                           "on": _day(30), "percent": "20", "note": "", **fields})
        assert response.status_code == 403, (username, path, fields)
        assert _milestones(app, one_part_task.part_id) == before and _audit_count(app) == audit


def test_a_stale_milestone_page_is_409(app, login, one_part_task):
    _prepare(app, one_part_task)
    office, staff = login("office"), login(one_part_task.part_staff)
    old_page = office.get(f"/tasks/{one_part_task.task_id}").text
    post(staff, one_part_task.task_id, f"{one_part_task.base}/progress", percent="10", note="已开工。")
    import re
    version = re.search(r'action="%s/milestones"[^>]*>.*?name="version" value="(\d+)"'
                        % re.escape(one_part_task.base), old_page, re.S).group(1)
    audit = _audit_count(app)
    response = office.post(f"{one_part_task.base}/milestones",
                           data={"csrf_token": csrf(old_page), "version": version, "mode": "set",
                                 "on": _day(30), "percent": "20", "note": ""})
    assert response.status_code == 409 and STALE_MESSAGE in response.text
    assert _milestones(app, one_part_task.part_id) == [] and _audit_count(app) == audit


def test_changing_the_line_holds_a_red_part_red(app, one_part_task):
    """Red by its lag, a part whose line the office lowers stays red until it reports."""
    _prepare(app, one_part_task)
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        office = user_named("office")
        extension_services.set_milestones(part, office, [(today_local() + timedelta(days=1), 90, None)])
        db.session.commit()
        later = today_local() + timedelta(days=2)
        assert pace.assess_parts([part], later)[part.id].level == WarningLevel.RED
    with app.app_context():
        from unittest import mock

        part = db.session.get(TaskPart, one_part_task.part_id)
        # As if two days had passed: the office then takes the steep point away.
        with mock.patch("workflow.extension_services.today_local", return_value=later):
            extension_services.set_milestones(part, user_named("office"), [])
        db.session.commit()
        assert part.red_since is not None
        found = pace.assess_parts([part], later)[part.id]
        assert found.level == WarningLevel.RED and found.reason.startswith("时限调整前落后序时进度")
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "milestones_set")
                                   .order_by(AuditEntry.seq.desc())).first()
        assert entry.details["red_held"] is True


def test_long_term_and_handed_in_parts_have_no_milestones(app, login, one_part_task):
    _prepare(app, one_part_task)
    office = login("office")
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        task.deadline, task.long_term = None, True
        version = task.parts[0].version
        db.session.commit()
    assert "设置进度节点" not in office.get(f"/tasks/{one_part_task.task_id}").text
    response = office.post(f"{one_part_task.base}/milestones", follow_redirects=True,
                           data={"csrf_token": csrf(office.get("/auth/password").text), "version": version,
                                 "mode": "set", "on": _day(30), "percent": "20", "note": ""})
    assert "不设进度节点" in response.text and _milestones(app, one_part_task.part_id) == []
