"""The event table and what hangs off it: every row has its machine transition,
its service, its route and its label; separation of duties decided per person
and shown on the page; resubmission after a return (earlier evidence carried
over by choice, something new required, progress no longer 100%); the "when"
rules shared by the buttons and the services (a closed task cannot be edited)."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from auth.permissions import can
from models import Evidence, Role, Submission, Task, TaskPart, User
from tests.helpers import csrf, lead_owns_part, post_on_task_page, unit_username
from workflow import bulk_services, extension_services, machine, services
from workflow.extensions import db
from workflow.services import Forbidden, Refused
from workflow.timeutil import today_local, utcnow
from workflow.vocabulary import CLOSED, IN_PROGRESS, SUBMITTED, VERIFIED


@pytest.fixture
def db_template():
    return "seed"


post = post_on_task_page


def get(model, row_id):
    return db.session.get(model, row_id)


# ---------------------------------------------------------------- the table

def test_every_event_row_has_its_transition_service_route_and_label(app):
    rules = {r.rule for r in app.url_map.iter_rules()}
    for event in machine.EVENTS:
        m = machine.MACHINES[event.subject]
        transition = m.events[event.trigger].transitions
        assert {s for s in transition} == set(event.source), event
        assert all(t.dest == event.dest for s in event.source for t in transition[s])
        assert re.search(r"[\u4e00-\u9fff]", event.label)
        if event.action is None:
            continue
        assert (event.subject, event.trigger) in services.TRANSITIONS, event
        assert re.search(r"[\u4e00-\u9fff]", event.success), event
        if event.subject not in ("part", "task"):
            continue
        prefix = "/tasks/<int:task_id>/parts/<int:part_id>/" if event.subject == "part" else "/tasks/<int:task_id>/"
        route = next(r for r in rules if r.startswith(prefix + "<any("))
        assert event.trigger in route, (event, route)
    # Nothing in the machines that the table does not have.
    for subject, m in machine.MACHINES.items():
        assert set(m.events) == {e.trigger for e in machine.EVENTS if e.subject == subject}


def test_every_notice_names_a_known_recipient_and_fills_its_message():
    for event in machine.EVENTS:
        for notice in event.notices:
            assert notice.to in services.RECIPIENTS
            notice.message.format(task="任务", unit="单位", reason="理由", date="2022-09-30")


# ---------------------------------------------------------------- separation of duties

@lead_owns_part
def test_the_leader_who_submitted_sees_no_verify_button_but_who_else_may(app, login, one_part_task):
    task_id, part_id, base = one_part_task.task_id, one_part_task.part_id, one_part_task.base
    boss = login(one_part_task.lead_leader)
    assert "已开始办理" in post(boss, task_id, f"{base}/start").text
    post(boss, task_id, f"{base}/evidence", text="会议纪要一份")
    assert "已提交" in post(boss, task_id, f"{base}/submit", statement="已全部完成。").text

    page = boss.get(f"/tasks/{task_id}").text
    assert f'action="{base}/verify"' not in page and f'action="{base}/return"' not in page
    assert "按职责分离不能由您本人核验或退回" in page
    assert "由办公室代为核验" in page            # the only leader: the office steps in (default)
    # A forged POST is refused with the reason, and changes nothing.
    forged = boss.post(f"{base}/verify", data={"csrf_token": csrf(page), "version": "3"})
    assert forged.status_code == 403 and "职责分离" in forged.text

    # The office sees the button, and it works.
    office = login("office")
    office_page = office.get(f"/tasks/{task_id}").text
    assert f'action="{base}/verify"' in office_page and "由办公室代为核验" in office_page
    assert "已核验通过" in post(office, task_id, f"{base}/verify").text
    with app.app_context():
        submission = db.session.scalars(select(Submission).where(Submission.part_id == part_id)).one()
        assert submission.outcome == "verified" and submission.decided_by.username == "office"


@lead_owns_part
def test_another_leader_of_the_lead_unit_is_named_and_the_office_stays_out(app, login, one_part_task):
    task_id, base = one_part_task.task_id, one_part_task.base
    with app.app_context():
        first = db.session.scalar(select(User).where(User.username == one_part_task.lead_leader))
        db.session.add(User(username="deputy", display_name="副局长王五", unit_id=one_part_task.lead_unit_id,
                            role=Role.UNIT_LEADER, password_hash=first.password_hash))
        db.session.commit()
    boss = login(one_part_task.lead_leader)
    post(boss, task_id, f"{base}/start")
    post(boss, task_id, f"{base}/evidence", text="会议纪要一份")
    post(boss, task_id, f"{base}/submit", statement="已全部完成。")
    page = boss.get(f"/tasks/{task_id}").text
    assert "可以核验的：副局长王五" in page and f'action="{base}/verify"' not in page

    office = login("office")
    assert f'action="{base}/verify"' not in office.get(f"/tasks/{task_id}").text
    deputy = login("deputy")
    assert f'action="{base}/verify"' in deputy.get(f"/tasks/{task_id}").text
    # The 待核验 list is what each can decide: the deputy's, not the submitter's.
    link = f'href="/tasks/{task_id}#part-{one_part_task.part_id}"'
    assert link in deputy.get("/tasks/verify").text and link not in boss.get("/tasks/verify").text
    with app.app_context():
        from workflow import queries

        submitter, other = (db.session.scalar(select(User).where(User.username == name))
                            for name in (one_part_task.lead_leader, "deputy"))
        assert queries.verify_count(other) == queries.verify_count(submitter) + 1
    assert "已核验通过" in post(deputy, task_id, f"{base}/verify").text


@lead_owns_part
def test_without_the_office_fallback_the_page_says_whom_to_ask(app, login, one_part_task):
    app.config["OFFICE_VERIFY_FALLBACK"] = False
    task_id, base = one_part_task.task_id, one_part_task.base
    boss = login(one_part_task.lead_leader)
    post(boss, task_id, f"{base}/start")
    post(boss, task_id, f"{base}/evidence", text="会议纪要一份")
    post(boss, task_id, f"{base}/submit", statement="已全部完成。")
    assert "请联系系统管理员为牵头单位添加一名负责人账号" in boss.get(f"/tasks/{task_id}").text
    office = login("office")
    page = office.get(f"/tasks/{task_id}").text
    assert f'action="{base}/verify"' not in page
    assert office.post(f"{base}/verify", data={"csrf_token": csrf(page), "version": "3"}).status_code == 403
    with app.app_context():
        assert get(Task, task_id).parts[0].state == SUBMITTED


SERVICE_FOR_RULE = {
    "part.progress": lambda part, task, u: services.record_progress(part, u, 50, "推进中"),
    "part.evidence": lambda part, task, u: services.add_text_evidence(part, u, "会议纪要"),
    "task.urge": lambda part, task, u: services.urge(task, u),
    "task.edit": lambda part, task, u: services.edit_task(task, u, text="新的任务内容"),
    "part.extend": lambda part, task, u: extension_services.request_extension(
        part, u, task.deadline + timedelta(days=30), "受天气影响。"),
    "milestone.set": lambda part, task, u: extension_services.set_milestones(part, u, []),
    "milestone.propose": lambda part, task, u: extension_services.propose_milestone(
        part, u, task.deadline - timedelta(days=5), 90, None),
    # No round is open here: neither shown nor accepted (tests/test_rounds.py checks it with one open).
    "part.file": lambda part, task, u: _file_any_round_entry(part, u),
    "part.remind": lambda part, task, u: bulk_services.remind_receipt([part], u),
}
# Fired by the office; the others by the part's unit.
OFFICE_RULES = {"task.urge", "task.edit", "milestone.set", "part.remind"}


def _file_any_round_entry(part, user):
    from models import RoundPart
    from workflow import round_services

    entry = db.session.scalar(select(RoundPart).where(RoundPart.part_id == part.id).limit(1))
    if entry is None:
        raise Refused("该任务不在任何调度中。")
    return round_services.file_round(entry, user, 10, "推进中")


@pytest.mark.parametrize("action", sorted(machine.ACTION_RULES))
def test_the_button_shows_exactly_when_the_service_accepts(app, one_part_task, action):
    assert set(SERVICE_FOR_RULE) == set(machine.ACTION_RULES)
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        # Ahead, so that the rules that read the date (延期申请) are open where the state allows.
        task.deadline = today_local() + timedelta(days=60)
        part = task.parts[0]
        actor = db.session.scalar(select(User).where(User.username == (
            "office" if action in OFFICE_RULES else unit_username(part.unit_id, Role.UNIT_STAFF))))
        for state in (machine.PLANNED, IN_PROGRESS, SUBMITTED, VERIFIED, CLOSED):
            if action.startswith("part.") and state == CLOSED:
                continue
            savepoint = db.session.begin_nested()
            task.state = part.state = state if state != CLOSED else VERIFIED
            task.state = state
            shown = can(actor, action, task if action.startswith("task.") else part)
            try:
                SERVICE_FOR_RULE[action](part, task, actor)
                accepted = True
            except Refused:
                accepted = False
            savepoint.rollback()
            assert shown == accepted, (action, state)


# ---------------------------------------------------------------- when: edit

def test_a_closed_task_cannot_be_edited_through_the_service(app):
    with app.app_context():
        task = db.session.scalars(select(Task).order_by(Task.id)).first()
        office = db.session.scalar(select(User).where(User.username == "office"))
        for state in (VERIFIED, CLOSED):
            task.state = state
            text_before = task.text
            with pytest.raises(Refused) as info:
                services.edit_task(task, office, text="改过的任务内容")
            assert "请先重新打开" in info.value.message
            assert task.text == text_before
        db.session.rollback()


# ---------------------------------------------------------------- resubmission

def _submitted_then_returned(login, one_part_task):
    """A part handed in with a file and a text, then returned; returns ids and clients."""
    from workflow.demo_activity import make_pdf

    task_id, part_id, base = one_part_task.task_id, one_part_task.part_id, one_part_task.base
    staff = login(one_part_task.part_staff)
    checker = login(one_part_task.lead_leader)
    post(staff, task_id, f"{base}/start")
    post(staff, task_id, f"{base}/progress", percent="60", note="已完成大部分")
    page = staff.get(f"/tasks/{task_id}").text
    staff.post(f"{base}/evidence", data={"csrf_token": csrf(page), "version": re.search(
        r'name="version" value="(\d+)"', page).group(1), "file": (io.BytesIO(make_pdf("ledger")),
                                                                  "台账.pdf"), "description": "工作台账"},
               content_type="multipart/form-data")
    post(staff, task_id, f"{base}/evidence", text="召开推进会2次")
    post(staff, task_id, f"{base}/submit", statement="已全部完成。")
    post(checker, task_id, f"{base}/return", reason="缺少现场照片")
    return task_id, part_id, base, staff, checker


def test_after_a_return_progress_is_the_last_reported_not_100(app, login, one_part_task):
    task_id, part_id, base, staff, checker = _submitted_then_returned(login, one_part_task)
    with app.app_context():
        part = get(Task, task_id).parts[0]
        assert (part.state, part.progress) == (IN_PROGRESS, 60)
    page = staff.get(f"/tasks/{task_id}").text
    assert 'value="60"' in page and "60%" in page


def test_earlier_evidence_is_offered_and_carried_only_when_chosen(app, login, one_part_task):
    task_id, part_id, base, staff, checker = _submitted_then_returned(login, one_part_task)
    page = staff.get(f"/tasks/{task_id}").text
    offered = re.findall(r'name="carry" value="(\d+)"', page)
    assert len(offered) == 2 and "沿用以前提交的材料" in page and "台账.pdf" in page
    with app.app_context():
        first = db.session.scalars(select(Submission).where(Submission.part_id == part_id)).one()
        first_evidence = sorted(e.id for e in first.evidence)
    assert sorted(int(i) for i in offered) == first_evidence

    # The same statement with nothing new is refused: nothing answers the return.
    refused = post(staff, task_id, f"{base}/submit", statement="已全部完成。", carry=offered)
    assert "这是退回后的重新提交" in refused.text
    # Another part's evidence cannot be smuggled in.
    with app.app_context():
        other_part = db.session.scalar(select(TaskPart).where(TaskPart.id != part_id).order_by(TaskPart.id))
        foreign = Evidence(part_id=other_part.id, kind="text", text="别的单位的材料",
                           uploaded_by_id=db.session.scalar(select(User.id).limit(1)), uploaded_at=utcnow())
        db.session.add(foreign)
        db.session.commit()
        foreign = foreign.id
    assert "不属于该任务" in post(staff, task_id, f"{base}/submit", statement="已补充照片。",
                                   carry=[str(foreign)]).text
    assert "所选材料无效" in post(staff, task_id, f"{base}/submit", statement="已补充照片。", carry=["x"]).text
    with app.app_context():
        assert len(db.session.scalars(select(Submission).where(Submission.part_id == part_id)).all()) == 1

    # A new statement and only the file carried over: handed in with a copy.
    pdf_id = min(int(i) for i in offered)
    done = post(staff, task_id, f"{base}/submit", statement="已按退回意见补充说明：现场照片见台账附页。",
                carry=[str(pdf_id)])
    assert "已提交" in done.text
    with app.app_context():
        first, second = db.session.scalars(select(Submission).where(Submission.part_id == part_id)
                                           .order_by(Submission.number)).all()
        assert sorted(e.id for e in first.evidence) == first_evidence      # unchanged
        (copy,) = second.evidence
        original = get(Evidence, pdf_id)
        assert copy.carried_from_id == pdf_id and copy.id != pdf_id
        assert (copy.kind, copy.filename, copy.content_sha256) == (original.kind, original.filename,
                                                                   original.content_sha256)
    # The lead unit can open the carried file from the new submission.
    page = checker.get(f"/tasks/{task_id}").text
    assert f"/evidence/{copy.id}/download" in page
    assert checker.get(f"/evidence/{copy.id}/download").data.startswith(b"%PDF")


def test_a_resubmission_with_new_evidence_may_keep_the_statement(app, login, one_part_task):
    task_id, part_id, base, staff, checker = _submitted_then_returned(login, one_part_task)
    post(staff, task_id, f"{base}/evidence", text="现场照片8张")
    assert "已提交" in post(staff, task_id, f"{base}/submit", statement="已全部完成。").text


def test_office_cannot_carry_or_submit_for_a_unit(app, login, one_part_task):
    task_id, part_id, base, staff, checker = _submitted_then_returned(login, one_part_task)
    with app.app_context():
        part = get(Task, task_id).parts[0]
        office = db.session.scalar(select(User).where(User.username == "office"))
        with pytest.raises(Forbidden):
            services.submit_part(part, office, "代为提交", carry=[e.id for e in services.carryable_evidence(part)])
        db.session.rollback()


def test_a_return_shows_the_progress_reported_before_it_even_when_the_notes_were_read_earlier(app, login,
                                                                                             one_part_task):
    """The part's progress notes read before a report in the same transaction do not
    hide that report: a return brings the part back to it (not to 0%)."""
    with app.app_context():
        part = get(TaskPart, one_part_task.part_id)
        staff = db.session.scalar(select(User).where(User.username == one_part_task.part_staff))
        leader = db.session.scalar(select(User).where(User.username == one_part_task.lead_leader))
        assert part.progress_notes == []          # loaded now, before the report below
        services.start_part(part, staff)
        services.record_progress(part, staff, 40, "已完成前期工作")
        services.add_text_evidence(part, staff, "会议纪要一份")
        services.submit_part(part, staff, statement="已全部完成。")
        services.return_part(part, leader, reason="请补充材料")
        db.session.commit()
        assert part.progress == 40
