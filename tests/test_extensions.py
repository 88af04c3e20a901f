"""延期申请 (extension requests, docs/extensions.md): asked by the part's unit,
approved by the lead unit's leader, granted by the office; the deadline in force
moves, the original stays visible; reasons, separation of duties, the late rule,
one request at a time, stale pages and forged posts; the red latch."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from models import AuditEntry, ExtensionRequest, Notification, Task, TaskPart, User
from tests.helpers import csrf, lead_owns_part, post_on_task_page, unit_username, user_named
from workflow import extension_services, pace, services
from workflow.extensions import db
from workflow.services import STALE_MESSAGE
from workflow.timeutil import chinese_date, today_local
from workflow.vocabulary import ExtensionState, WarningLevel


@pytest.fixture
def db_template():
    return "seed"


post = post_on_task_page


def _prepare(app, one_part_task, *, days: int = 30, start: bool = True) -> date:
    """The part's task due in ``days`` days (negative: overdue), the part started."""
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        task.deadline = today_local() + timedelta(days=days)
        if start:
            services.start_part(task.parts[0], user_named(one_part_task.part_staff))
        db.session.commit()
        return task.deadline


def _counts(app) -> dict:
    with app.app_context():
        return {"requests": db.session.scalar(select(func.count(ExtensionRequest.id))),
                "audit": db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action != "login")),
                "notifications": db.session.scalar(select(func.count(Notification.id)))}


def _request_state(app, request_id: int) -> tuple:
    with app.app_context():
        r = db.session.get(ExtensionRequest, request_id)
        part = db.session.get(TaskPart, r.part_id)
        return r.state, r.version, part.deadline


def _only_request(app, part_id: int) -> int:
    with app.app_context():
        return db.session.scalars(select(ExtensionRequest.id).where(ExtensionRequest.part_id == part_id)).one()


def _ask(client, one_part_task, new_deadline: date, reason: str = "受汛期影响，施工暂停一个月。", **fields):
    return post(client, one_part_task.task_id, f"{one_part_task.base}/extension",
                new_deadline=new_deadline.isoformat(), reason=reason, **fields)


def _version(app, part_id: int) -> str:
    """The part's version, for a post where the page shows no form (the rule is closed)."""
    with app.app_context():
        return str(db.session.get(TaskPart, part_id).version)


def _decide(client, task_id: int, request_id: int, decision: str, **fields):
    return post(client, task_id, f"/extensions/{request_id}/{decision}", **fields)


# ---------------------------------------------------------------- the whole path

def test_request_approve_grant_moves_the_deadline_in_force_and_keeps_the_original(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    with app.app_context():
        original = db.session.get(Task, one_part_task.task_id).deadline_original
    new = deadline + timedelta(days=45)
    staff, lead, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")

    page = staff.get(f"/tasks/{one_part_task.task_id}").text
    assert f'action="{one_part_task.base}/extension"' in page and "申请延期" in page
    assert "延期申请已提交" in _ask(staff, one_part_task, new).text
    request_id = _only_request(app, one_part_task.part_id)
    with app.app_context():
        r = db.session.get(ExtensionRequest, request_id)
        assert (r.state, r.old_deadline, r.new_deadline, r.late, r.progress) == (
            ExtensionState.PENDING_LEAD, deadline, new, False, 0)
        assert r.requested_by.username == one_part_task.part_staff
        lead_user = user_named(one_part_task.lead_leader)
        asked = db.session.scalars(select(Notification).where(Notification.user_id == lead_user.id,
                                                              Notification.kind == "extension")).one()
        assert chinese_date(new) in asked.message and "请审核" in asked.message
    # The requester has no decision buttons; the lead leader has, and its 延期审批 counts it.
    assert f'action="/extensions/{request_id}/approve"' not in staff.get(f"/tasks/{one_part_task.task_id}").text
    lead_page = lead.get("/extensions").text
    assert f'action="/extensions/{request_id}/approve"' in lead_page
    assert re.search(r"延期审批 <span class=\"badge\"[^>]*>1</span>", lead_page)

    assert "已同意，报办公室审批" in _decide(lead, one_part_task.task_id, request_id, "approve").text
    assert _request_state(app, request_id)[0] == ExtensionState.PENDING_OFFICE
    with app.app_context():
        office_user = user_named("office")
        told = db.session.scalars(select(Notification).where(Notification.user_id == office_user.id,
                                                             Notification.kind == "extension")).one()
        assert chinese_date(new) in told.message and "{date}" not in told.message
    # Not the lead leader's to grant.
    assert f'action="/extensions/{request_id}/grant"' not in lead.get(f"/tasks/{one_part_task.task_id}").text

    assert "已批准延期" in _decide(office, one_part_task.task_id, request_id, "grant").text
    state, _, part_deadline = _request_state(app, request_id)
    assert (state, part_deadline) == (ExtensionState.GRANTED, new)
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        assert task.deadline == deadline and task.deadline_original == original       # the task keeps its dates
        assert task.parts[0].deadline_in_force(task) == new
        actions = db.session.scalars(select(AuditEntry.action).where(
            AuditEntry.part_id == one_part_task.part_id, AuditEntry.action.like("extension%"))
            .order_by(AuditEntry.seq)).all()
        assert actions == ["extension_requested", "extension_approved", "extension_granted"]
        granted = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "extension_granted")).one()
        assert (granted.details["from_state"], granted.details["to_state"]) == ("pending_office", "granted")
        assert granted.details["new_deadline"] == new.isoformat()
        staff_user = user_named(one_part_task.part_staff)
        result = db.session.scalars(select(Notification).where(Notification.user_id == staff_user.id,
                                                               Notification.kind == "extension_decided")).one()
        assert chinese_date(new) in result.message and "已批准" in result.message

    page = staff.get(f"/tasks/{one_part_task.task_id}").text
    block = page[page.index(f'id="extensions-{one_part_task.part_id}"'):]
    assert re.search(r"<dt>原定时限</dt><dd>%s" % re.escape(chinese_date(original)), block) if original else True
    assert f"<dt>现行时限</dt><dd>{chinese_date(new)}" in block and "已批准延期" in block
    assert "办公室批准延期" in block and "牵头单位同意" in block
    # The timeline names each step with its dates.
    assert f"{deadline.isoformat()} → {new.isoformat()}" in page.split('class="timeline"')[1]
    # The audit page reads the entries in Chinese.
    audit_page = office.get("/audit").text
    assert "办公室批准延期" in audit_page and "待办公室审批" in audit_page


def test_the_task_page_shows_the_original_deadline_after_an_office_edit(app, login, one_part_task):
    """原定时限 is the plan's date, whatever the office later set; an edit of the
    task's deadline supersedes a granted extension (services.edit_task)."""
    deadline = _prepare(app, one_part_task)
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        task.deadline_original = date(2022, 12, 31)
        part = task.parts[0]
        r = extension_services.request_extension(part, user_named(one_part_task.part_staff),
                                                 deadline + timedelta(days=10), "设备到货延迟。")
        extension_services.approve_extension(r, user_named(one_part_task.lead_leader))
        extension_services.grant_extension(r, user_named("office"))
        db.session.commit()
        assert part.deadline == deadline + timedelta(days=10)
        services.edit_task(task, user_named("office"), deadline=deadline + timedelta(days=60))
        db.session.commit()
        assert part.deadline is None and part.deadline_in_force(task) == deadline + timedelta(days=60)
        edited = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "task_edited")).one()
        assert edited.details["extensions_superseded"] == [part.unit.name]
    page = login("office").get(f"/tasks/{one_part_task.task_id}").text
    assert "<dt>原定时限</dt><dd>2022年12月31日" in page
    assert f"<dt>现行时限</dt><dd>{chinese_date(deadline + timedelta(days=60))}" in page


# ---------------------------------------------------------------- reasons

def test_decline_and_refuse_need_their_reasons(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    staff, lead, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")
    _ask(staff, one_part_task, deadline + timedelta(days=20))
    first = _only_request(app, one_part_task.part_id)
    before = _counts(app)
    assert "请填写理由" in _decide(lead, one_part_task.task_id, first, "decline", reason="  ").text
    assert _request_state(app, first)[0] == ExtensionState.PENDING_LEAD and _counts(app) == before
    assert "已不同意该延期申请" in _decide(lead, one_part_task.task_id, first, "decline",
                                       reason="理由不充分，请按原计划推进。").text
    with app.app_context():
        r = db.session.get(ExtensionRequest, first)
        assert (r.state, r.lead_reason, r.office_decided_at) == (ExtensionState.REFUSED, "理由不充分，请按原计划推进。",
                                                                 None)
        assert r.decided_at == r.lead_decided_at
    page = staff.get(f"/tasks/{one_part_task.task_id}").text
    assert "牵头单位不同意" in page and "理由不充分，请按原计划推进。" in page

    # A refused request leaves the way open for a new one, which the office may refuse, with its reason.
    assert "延期申请已提交" in _ask(staff, one_part_task, deadline + timedelta(days=15), "补充理由：材料已备齐。").text
    with app.app_context():
        second = db.session.scalars(select(ExtensionRequest.id).where(ExtensionRequest.id != first)).one()
    _decide(lead, one_part_task.task_id, second, "approve")
    before = _counts(app)
    assert "请填写理由" in _decide(office, one_part_task.task_id, second, "refuse").text
    assert _request_state(app, second)[0] == ExtensionState.PENDING_OFFICE and _counts(app) == before
    assert "已不予延期" in _decide(office, one_part_task.task_id, second, "refuse", reason="全区统一时限，不予调整。").text
    state, _, part_deadline = _request_state(app, second)
    assert (state, part_deadline) == (ExtensionState.REFUSED, None)
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "extension_refused")).one()
        assert entry.reason == "全区统一时限，不予调整。" and entry.details["to_state"] == "refused"


def test_the_new_date_must_be_later_and_the_reason_given(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    staff = login(one_part_task.part_staff)
    before = _counts(app)
    assert "须晚于现行完成时限" in _ask(staff, one_part_task, deadline).text
    assert "须晚于现行完成时限" in _ask(staff, one_part_task, deadline - timedelta(days=3)).text
    assert "请填写申请延期的理由" in _ask(staff, one_part_task, deadline + timedelta(days=3), reason=" ").text
    assert "请填写申请延至的日期" in post(staff, one_part_task.task_id, f"{one_part_task.base}/extension",
                                      new_deadline="", reason="理由").text
    bad = post(staff, one_part_task.task_id, f"{one_part_task.base}/extension", new_deadline="2026-13-45",
               reason="理由")
    assert bad.status_code == 200 and "不是有效的日期值" in bad.text
    assert _counts(app) == before


# ---------------------------------------------------------------- who

@lead_owns_part
def test_a_requester_who_is_also_the_lead_leader_cannot_approve_their_own(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    boss = login(one_part_task.lead_leader)     # leads the task and does its part
    assert "延期申请已提交" in _ask(boss, one_part_task, deadline + timedelta(days=30)).text
    request_id = _only_request(app, one_part_task.part_id)
    page = boss.get(f"/tasks/{one_part_task.task_id}").text
    assert f'action="/extensions/{request_id}/approve"' not in page
    before = _counts(app)
    forged = boss.post(f"/extensions/{request_id}/approve", data={"csrf_token": csrf(page), "version": "1"})
    assert forged.status_code == 403 and "本人提出的申请" in forged.text
    assert _request_state(app, request_id)[0] == ExtensionState.PENDING_LEAD and _counts(app) == before
    assert request_id not in [r.id for r in _to_decide(app, one_part_task.lead_leader)]
    # No other leader of the lead unit: the office decides that step too (OFFICE_VERIFY_FALLBACK).
    office = login("office")
    assert f'action="/extensions/{request_id}/approve"' in office.get("/extensions").text
    assert "由办公室代为审核" in office.get(f"/tasks/{one_part_task.task_id}").text
    assert "已同意，报办公室审批" in _decide(office, one_part_task.task_id, request_id, "approve").text
    assert _request_state(app, request_id)[0] == ExtensionState.PENDING_OFFICE


def _to_decide(app, username: str) -> list:
    from workflow import queries

    with app.app_context():
        return queries.extensions_to_decide(user_named(username))


def test_forged_and_forbidden_posts_are_403_and_change_nothing(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    new = (deadline + timedelta(days=30)).isoformat()
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        unrelated = next(u for u in db.session.scalars(select(User).where(User.role == "unit_staff"))
                         if u.unit_id not in {one_part_task.lead_unit_id, one_part_task.part_unit_id})
        lead_staff = unit_username(one_part_task.lead_unit_id, "staff")
        assert task.parts[0].unit_id == one_part_task.part_unit_id
    for username in (unrelated.username, lead_staff, "office", "leader"):
        client = login(username)
        token = csrf(client.get("/auth/password").text)
        before = _counts(app)
        response = client.post(f"{one_part_task.base}/extension",
                               data={"csrf_token": token, "version": "1", "new_deadline": new, "reason": "代为申请"})
        assert response.status_code == 403, username
        assert _counts(app) == before, username

    staff = login(one_part_task.part_staff)
    # Without the CSRF token: refused before anything runs.
    before = _counts(app)
    no_token = staff.post(f"{one_part_task.base}/extension", data={"version": "1", "new_deadline": new,
                                                                   "reason": "理由"})
    assert no_token.status_code == 400 and _counts(app) == before
    _ask(staff, one_part_task, deadline + timedelta(days=30))
    request_id = _only_request(app, one_part_task.part_id)
    lead = login(one_part_task.lead_leader)
    cells = [(one_part_task.part_staff, "approve"), (one_part_task.part_leader, "decline"),
             (unrelated.username, "approve"), (lead_staff, "approve"), ("leader", "approve"),
             (one_part_task.lead_leader, "grant"), (one_part_task.part_staff, "refuse"), ("office", "decline")]
    for username, decision in cells:
        client = login(username) if username != one_part_task.lead_leader else lead
        token = csrf(client.get("/auth/password").text)
        before, state = _counts(app), _request_state(app, request_id)
        response = client.post(f"/extensions/{request_id}/{decision}",
                               data={"csrf_token": token, "version": "1", "reason": "伪造"})
        assert response.status_code == 403, (username, decision)
        assert _counts(app) == before and _request_state(app, request_id) == state, (username, decision)
    # An id that does not exist, or a request of another task's part in the URL, is a 404.
    assert lead.post("/extensions/999999/approve", data={"csrf_token": csrf(lead.get("/auth/password").text),
                                                         "version": "1"}).status_code == 404
    with app.app_context():
        other = db.session.scalar(select(TaskPart).where(TaskPart.task_id != one_part_task.task_id))
    assert staff.post(f"/tasks/{one_part_task.task_id}/parts/{other.id}/extension",
                      data={"csrf_token": csrf(staff.get("/auth/password").text), "version": "1", "new_deadline": new,
                            "reason": "理由"}).status_code == 404


def test_a_stale_page_is_409_and_changes_nothing(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    staff, lead, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")
    stale_page = staff.get(f"/tasks/{one_part_task.task_id}").text       # the part at this version
    _ask(staff, one_part_task, deadline + timedelta(days=30))
    request_id = _only_request(app, one_part_task.part_id)
    lead_page = lead.get(f"/tasks/{one_part_task.task_id}").text          # the request at version 1
    _decide(lead, one_part_task.task_id, request_id, "approve")           # now version 2
    before, state = _counts(app), _request_state(app, request_id)

    # The lead page's version on the office's grant: somebody else acted meanwhile.
    version = re.search(r'action="/extensions/%d/approve"[^>]*>.*?name="version" value="(\d+)"' % request_id,
                        lead_page, re.S).group(1)
    response = office.post(f"/extensions/{request_id}/grant",
                           data={"csrf_token": csrf(office.get("/auth/password").text), "version": version})
    assert response.status_code == 409 and STALE_MESSAGE in response.text
    assert f'id="extensions-{one_part_task.part_id}"' in response.text       # the task page, fresh
    assert _counts(app) == before and _request_state(app, request_id) == state

    # A request from a page older than the part: the part moved (a progress entry) since.
    post(staff, one_part_task.task_id, f"{one_part_task.base}/progress", percent="30", note="已完成设计。")
    with app.app_context():
        db.session.get(ExtensionRequest, request_id).state = ExtensionState.REFUSED   # let a new request in
        db.session.commit()
    old_version = re.search(r'action="%s/extension"[^>]*>.*?name="version" value="(\d+)"'
                            % re.escape(one_part_task.base), stale_page, re.S).group(1)
    before = _counts(app)
    response = staff.post(f"{one_part_task.base}/extension",
                          data={"csrf_token": csrf(stale_page), "version": old_version,
                                "new_deadline": (deadline + timedelta(days=9)).isoformat(), "reason": "理由"})
    assert response.status_code == 409 and STALE_MESSAGE in response.text
    assert _counts(app) == before


# ---------------------------------------------------------------- when

def test_a_second_pending_request_is_refused(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    staff = login(one_part_task.part_staff)
    _ask(staff, one_part_task, deadline + timedelta(days=30))
    page = staff.get(f"/tasks/{one_part_task.task_id}").text
    assert f'action="{one_part_task.base}/extension"' not in page          # no form while one is pending
    before = _counts(app)
    with app.app_context():
        version = db.session.get(TaskPart, one_part_task.part_id).version
    response = staff.post(f"{one_part_task.base}/extension", follow_redirects=True,
                          data={"csrf_token": csrf(page), "version": version,
                                "new_deadline": (deadline + timedelta(days=60)).isoformat(), "reason": "再申请"})
    assert "已有一项延期申请正在审批" in response.text and _counts(app) == before


def test_after_the_deadline_a_request_is_refused_unless_the_office_allows_late_ones(app, login, one_part_task):
    deadline = _prepare(app, one_part_task, days=-3)
    staff = login(one_part_task.part_staff)
    assert f'action="{one_part_task.base}/extension"' not in staff.get(f"/tasks/{one_part_task.task_id}").text
    before = _counts(app)
    refused = _ask(staff, one_part_task, today_local() + timedelta(days=20),
                   version=_version(app, one_part_task.part_id))
    assert f"已超过完成时限（{deadline.isoformat()}），不能再申请延期" in refused.text and _counts(app) == before

    app.config["LATE_EXTENSIONS"] = True
    assert "延期申请已提交" in _ask(staff, one_part_task, today_local() + timedelta(days=20)).text
    with app.app_context():
        r = db.session.get(ExtensionRequest, _only_request(app, one_part_task.part_id))
        assert r.late is True and r.old_deadline == deadline
    page = login(one_part_task.lead_leader).get(f"/tasks/{one_part_task.task_id}").text
    assert "超过时限后申请" in page
    audit_page = login("office").get(f"/audit?task={one_part_task.task_id}").text
    assert '<span class="muted">超过时限后申请</span> 是' in audit_page
    assert '<span class="muted">申请时进度</span> 0%' in audit_page
    # Even late, the new date lies ahead (once the lead unit has answered the request).
    with app.app_context():
        extension_services.decline_extension(db.session.get(ExtensionRequest, r.id),
                                             user_named(one_part_task.lead_leader), "时限已过，不同意。")
        db.session.commit()
    assert "须晚于今天" in _ask(staff, one_part_task, today_local()).text


def test_a_long_term_part_and_a_handed_in_part_cannot_ask(app, login, one_part_task):
    _prepare(app, one_part_task)
    staff = login(one_part_task.part_staff)
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        task.deadline, task.long_term = None, True
        db.session.commit()
    assert "长期任务没有完成时限，无需申请延期" in _ask(staff, one_part_task, today_local() + timedelta(days=30),
                                                version=_version(app, one_part_task.part_id)).text
    assert "现行时限" not in staff.get(f"/tasks/{one_part_task.task_id}").text
    with app.app_context():
        task = db.session.get(Task, one_part_task.task_id)
        task.long_term, task.deadline = False, today_local() + timedelta(days=30)
        task.parts[0].state = "submitted"
        db.session.commit()
    assert "已提交或已核验的任务不能申请延期" in _ask(staff, one_part_task, today_local() + timedelta(days=60),
                                                version=_version(app, one_part_task.part_id)).text
    assert _counts(app)["requests"] == 0


# ---------------------------------------------------------------- the red latch

def test_a_red_part_stays_red_after_its_extension_until_progress_catches_up(app, login, one_part_task):
    """Overdue (red), a late extension granted: still red, held; a progress entry
    that does not catch up keeps it red, one that does ends it."""
    app.config["LATE_EXTENSIONS"] = True
    _prepare(app, one_part_task, days=-10)      # started, never received: the line starts at the plan's date
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        assert pace.assess_one(part, today_local()).level == WarningLevel.RED
        r = extension_services.request_extension(part, user_named(one_part_task.part_staff),
                                                 today_local() + timedelta(days=60), "审批流程延误。")
        extension_services.approve_extension(r, user_named(one_part_task.lead_leader))
        extension_services.grant_extension(r, user_named("office"))
        db.session.commit()
        found = pace.assess_one(part, today_local())
        assert part.red_since is not None and found.level == WarningLevel.RED and "已逾期" in part.red_reason
        planned = found.planned
        assert planned is not None and planned > 50, "the line from the plan's date is mostly run"
        granted = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "extension_granted")).one()
        assert granted.details["red_held"] is True

        services.record_progress(part, user_named(one_part_task.part_staff), planned - 45, "部分完成。")
        db.session.commit()
        assert part.red_since is not None and pace.assess_one(part, today_local()).level == WarningLevel.RED

        services.record_progress(part, user_named(one_part_task.part_staff), planned, "已赶上进度。")
        db.session.commit()
        assert part.red_since is None
        assert pace.assess_one(part, today_local()).level != WarningLevel.RED


def test_the_latch_alone_keeps_a_part_red_after_its_extension(app, one_part_task):
    """Received today, so the new line starts today at 0%: by the rules alone the
    part would be fine once extended; it stays red, held, until it reports."""
    app.config["LATE_EXTENSIONS"] = True
    _prepare(app, one_part_task, days=-10, start=False)
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        staff = user_named(one_part_task.part_staff)
        services.receive_part(part, staff)
        services.start_part(part, staff)
        r = extension_services.request_extension(part, staff, today_local() + timedelta(days=60), "征地未完成。")
        extension_services.approve_extension(r, user_named(one_part_task.lead_leader))
        extension_services.grant_extension(r, user_named("office"))
        db.session.commit()
        found = pace.assess_one(part, today_local())
        assert (found.level, found.planned) == (WarningLevel.RED, 0)
        assert found.reason.startswith("时限调整前已逾期 10 天") and "红色预警保持至报送进度赶上序时进度" in found.reason

        services.record_progress(part, staff, 5, "已开工。")
        db.session.commit()
        assert part.red_since is None and pace.assess_one(part, today_local()).level is None
        progress = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "progress")).one()
        assert progress.details["red_released"] is True


def test_a_grant_after_the_office_moved_the_date_further_is_refused(app, one_part_task):
    deadline = _prepare(app, one_part_task)
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        r = extension_services.request_extension(part, user_named(one_part_task.part_staff),
                                                 deadline + timedelta(days=10), "理由。")
        extension_services.approve_extension(r, user_named(one_part_task.lead_leader))
        services.edit_task(part.task, user_named("office"), deadline=deadline + timedelta(days=40))
        db.session.commit()
        with pytest.raises(services.Refused) as info:
            extension_services.grant_extension(r, user_named("office"))
        assert "不早于申请延至的日期" in info.value.message
        db.session.rollback()
        assert db.session.get(ExtensionRequest, r.id).state == ExtensionState.PENDING_OFFICE


# ---------------------------------------------------------------- the 延期审批 page

def test_the_decisions_page_lists_what_each_decides_and_the_decided(app, login, one_part_task):
    deadline = _prepare(app, one_part_task)
    staff, lead, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")
    _ask(staff, one_part_task, deadline + timedelta(days=30))
    request_id = _only_request(app, one_part_task.part_id)
    assert f'action="/extensions/{request_id}/' not in office.get("/extensions").text   # the lead unit's turn
    assert 'href="/extensions"' not in staff.get("/tasks/").text        # staff decide nothing: no link
    response = lead.post(f"/extensions/{request_id}/approve",
                         data={"csrf_token": csrf(lead.get("/extensions").text), "version": "1",
                               "next": "/extensions"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/extensions")
    office_page = office.get("/extensions").text
    assert f'action="/extensions/{request_id}/grant"' in office_page and "牵头单位同意" in office_page
    assert re.search(r"延期审批 <span class=\"badge\"[^>]*>1</span>", office_page)
    response = office.post(f"/extensions/{request_id}/refuse",
                           data={"csrf_token": csrf(office_page), "version": "2", "reason": "不符合条件。",
                                 "next": "https://evil.example/"})
    assert response.status_code == 302 and "evil.example" not in response.headers["Location"]
    decided = office.get("/extensions?show=refused").text
    assert "不符合条件。" in decided and "未获批准" in decided
    assert "没有等待您审批的延期申请" in decided
    assert "不符合条件。" not in office.get("/extensions?show=granted").text
    # A unit that neither leads nor does the task does not see its requests.
    with app.app_context():
        outsider = next(u.username for u in db.session.scalars(select(User).where(User.role == "unit_leader"))
                        if u.unit_id not in {one_part_task.lead_unit_id, one_part_task.part_unit_id})
    assert "不符合条件。" not in login(outsider).get("/extensions?show=all").text


# ---------------------------------------------------------------- no reference cycles (issue 7)

@pytest.mark.parametrize("who", ["office", "lead_leader", "part_staff"])
def test_the_pages_with_requests_and_milestones_leave_no_cycles(app, login, one_part_task, who):
    """The decision buttons ask who decides a request or a milestone: that must
    not tie the part's loaded ``extensions``/``milestones`` to their ``part``."""
    from tests.test_request_garbage import cyclic_garbage_of

    deadline = _prepare(app, one_part_task)
    with app.app_context():
        part = db.session.get(TaskPart, one_part_task.part_id)
        staff = user_named(one_part_task.part_staff)
        extension_services.request_extension(part, staff, deadline + timedelta(days=20), "理由。")
        extension_services.propose_milestone(part, staff, deadline - timedelta(days=10), 80, None)
        db.session.commit()
    client = login({"office": "office", "lead_leader": one_part_task.lead_leader,
                    "part_staff": one_part_task.part_staff}[who])
    page = client.get(f"/tasks/{one_part_task.task_id}").text
    if who == "lead_leader":
        assert "/approve" in page           # the buttons that ask were rendered
    for path in (f"/tasks/{one_part_task.task_id}", "/extensions", "/extensions?show=all"):
        leftovers = cyclic_garbage_of(client, path)
        assert not leftovers, f"{path}: {len(leftovers)} sessions/rows in reference cycles"
