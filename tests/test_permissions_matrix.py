"""Every cell of the permission matrix (docs/permissions.md), over HTTP.

Role × action × state, plus a user of an unrelated unit. The expectations are
written out here as a table — not computed with auth.permissions — so that a
change to the permission module that breaks the documented matrix fails here.

The task under test is item 1's 工作任务 1: lead unit 区发展改革局 ("L"), work
done by one part owned by 区财政局 ("R"). "X" is 区民政局, unrelated to it.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token, log_in, session_token, unit_username
from workflow.extensions import db

USERS = ("office", "office2", "viewer", "R.leader", "R.staff", "L.leader", "L.staff", "X.leader", "X.staff")
STATES = ("planned", "in_progress", "submitted", "verified", "closed")

# Who may (docs/permissions.md) …
WHO = {
    "part.receive": {"R.leader", "R.staff"},
    "part.start": {"R.leader", "R.staff"},
    "part.progress": {"R.leader", "R.staff"},
    "part.evidence": {"R.leader", "R.staff"},
    "part.submit": {"R.leader", "R.staff"},
    "part.verify": {"L.leader"},
    "part.return": {"L.leader"},
    "task.close": {"office", "office2"},
    "task.reopen": {"office", "office2"},
    "task.urge": {"office", "office2"},
    "task.edit": {"office", "office2"},
}
# … and from which states (the machine).
WHEN = {
    "part.receive": {"planned"},
    "part.start": {"planned"},
    "part.progress": {"in_progress"},
    "part.evidence": {"in_progress"},
    "part.submit": {"in_progress"},
    "part.verify": {"submitted"},
    "part.return": {"submitted"},
    "task.close": {"verified"},
    "task.reopen": {"verified", "closed"},
    "task.urge": {"planned", "in_progress"},
    "task.edit": {"planned", "in_progress", "submitted"},
}
VIEWERS = {"office", "office2", "viewer", "R.leader", "R.staff", "L.leader", "L.staff"}

UNIT_NAMES = {"R": "区财政局", "L": "区发展改革局", "X": "区民政局"}


@pytest.fixture
def db_template():
    return "seed"


def _subject():
    from models import Item

    item = db.session.scalar(select(Item).where(Item.number == "1"))
    task = next(t for t in item.tasks if t.kind == "task" and t.seq == 1)
    assert [p.unit.name for p in task.parts] == [UNIT_NAMES["R"]]
    assert [u.name for u in task.lead_units] == [UNIT_NAMES["L"]]
    return task, task.parts[0]


def _username(label: str) -> str:
    from models import Unit

    if "." not in label:
        return {"viewer": "leader"}.get(label, label)
    unit_key, role = label.split(".")
    unit = db.session.scalar(select(Unit).where(Unit.name == UNIT_NAMES[unit_key]))
    return unit_username(unit, role)


def _user(label: str):
    from models import User

    return db.session.scalar(select(User).where(User.username == _username(label)))


def bring_to(app, state: str) -> None:
    """Put the subject task in ``state`` through the services, as the real users."""
    from workflow import services

    with app.app_context():
        task, part = _subject()
        if state == "planned":
            return
        staff, leader, office = _user("R.staff"), _user("L.leader"), _user("office")
        services.start_part(part, staff)
        services.add_text_evidence(part, staff, "已建立工作台账。")
        services.add_file_evidence(part, staff, b"%PDF-1.4\n%%EOF\n", "工作台账.pdf")
        if state != "in_progress":
            services.submit_part(part, staff, statement="已全部完成。")
        if state in ("verified", "closed"):
            services.verify_part(part, leader)
        if state == "closed":
            services.close_task(task, office)
        db.session.commit()
        assert task.state == state


def _request(client, action: str, task_id: int, part_id: int, version: int, task_version: int):
    base = f"/tasks/{task_id}"
    part_url = f"{base}/parts/{part_id}"
    token = session_token(client)
    if action == "part.evidence":
        return client.post(f"{part_url}/evidence", data={"csrf_token": token, "version": version,
                                                         "text": "补充：活动照片说明。", "description": ""},
                           content_type="multipart/form-data")
    if action == "part.progress":
        return client.post(f"{part_url}/progress", data={"csrf_token": token, "version": version,
                                                         "percent": "50", "note": "已完成一半。"})
    if action.startswith("part."):
        event = action.split(".")[1]
        return client.post(f"{part_url}/{event}", data={"csrf_token": token, "version": version,
                                                        "statement": "已完成。", "reason": "材料不全。"})
    if action == "task.urge":
        return client.post(f"{base}/urge", data={"csrf_token": token, "message": "请加快进度。"})
    if action == "task.edit":
        return client.post(f"{base}/edit", data={"csrf_token": token, "version": task_version,
                                                 "text": "修改后的任务内容。", "deadline": "2026-12-31",
                                                 "deadline_text": "2026年底前"})
    event = action.split(".")[1]
    return client.post(f"{base}/{event}", data={"csrf_token": token, "version": task_version,
                                                "reason": "需要补充材料。"})


def _snapshot(app):
    from models import AuditEntry, Evidence, Notification, ProgressNote

    with app.app_context():
        task, part = _subject()
        return {
            "task": task.state, "part": part.state, "task_version": task.version, "version": part.version,
            "audit": db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action != "login")),
            "evidence": db.session.scalar(select(func.count(Evidence.id))),
            "progress": db.session.scalar(select(func.count(ProgressNote.id))),
            "notifications": db.session.scalar(select(func.count(Notification.id))),
            "ids": (task.id, part.id),
        }


def _client(app, label: str):
    with app.app_context():
        username = _username(label)
    return log_in(app.test_client(), username)


def _act(app, label: str, action: str, client=None):
    before = _snapshot(app)
    client = client or _client(app, label)
    task_id, part_id = before["ids"]
    response = _request(client, action, task_id, part_id, before["version"], before["task_version"])
    return response, before, _snapshot(app), client


def _unchanged(before, after) -> bool:
    return all(before[k] == after[k] for k in before if k != "ids")


@pytest.mark.parametrize("state", STATES)
def test_refused_cells_change_nothing(app, state):
    """Every (user, action) that the matrix forbids in this state: 403 when the
    user may not act at all, a refusal message when only the state is wrong;
    either way nothing changes."""
    bring_to(app, state)
    clients = {label: _client(app, label) for label in USERS}
    checked = 0
    for action in WHO:
        for label in USERS:
            allowed_who = label in WHO[action]
            if allowed_who and state in WHEN[action]:
                continue   # the allowed cells are in test_allowed_cells, each on a fresh database
            response, before, after, client = _act(app, label, action, clients[label])
            if not allowed_who:
                assert response.status_code == 403, (label, action, state, response.status_code)
            else:
                # The right person at the wrong moment: sent back to the task,
                # where the refusal is explained.
                assert response.status_code == 302, (label, action, state, response.status_code)
                page = client.get(response.headers["Location"]).get_data(as_text=True)
                assert "当前状态为" in page or "无需催办" in page or "请先重新打开" in page, (label, action, state)
            assert _unchanged(before, after), (label, action, state, before, after)
            checked += 1
    assert checked > 0


ALLOWED = [(label, action, state) for action in WHO for label in sorted(WHO[action]) for state in sorted(WHEN[action])]

EXPECTED_AFTER = {
    ("part.receive", "planned"): ("planned", "planned"),
    ("part.start", "planned"): ("in_progress", "in_progress"),
    ("part.progress", "in_progress"): ("in_progress", "in_progress"),
    ("part.evidence", "in_progress"): ("in_progress", "in_progress"),
    ("part.submit", "in_progress"): ("submitted", "submitted"),
    ("part.verify", "submitted"): ("verified", "verified"),
    ("part.return", "submitted"): ("in_progress", "in_progress"),
    ("task.close", "verified"): ("closed", "verified"),
    ("task.reopen", "verified"): ("in_progress", "in_progress"),
    ("task.reopen", "closed"): ("in_progress", "in_progress"),
    ("task.urge", "planned"): ("planned", "planned"),
    ("task.urge", "in_progress"): ("in_progress", "in_progress"),
    ("task.edit", "planned"): ("planned", "planned"),
    ("task.edit", "in_progress"): ("in_progress", "in_progress"),
    ("task.edit", "submitted"): ("submitted", "submitted"),
}


@pytest.mark.parametrize("label,action,state", ALLOWED)
def test_allowed_cells(app, label, action, state):
    bring_to(app, state)
    response, before, after, _ = _act(app, label, action)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert after["audit"] > before["audit"], "an allowed action is audited"
    assert (after["task"], after["part"]) == EXPECTED_AFTER[(action, state)]
    if action == "part.evidence":
        assert after["evidence"] == before["evidence"] + 1
    if action == "part.progress":
        assert after["progress"] == before["progress"] + 1
    if action == "task.urge":
        assert after["notifications"] > before["notifications"]


@pytest.mark.parametrize("state", ["planned", "submitted"])
def test_who_sees_the_task_and_its_evidence(app, state):
    from models import Evidence

    bring_to(app, state)
    with app.app_context():
        task, _ = _subject()
        evidence_id = db.session.scalar(select(Evidence.id).where(Evidence.kind == "file"))
    for label in USERS:
        with app.app_context():
            username = _username(label)
        client = log_in(app.test_client(), username)
        expected = 200 if label in VIEWERS else 403
        assert client.get(f"/tasks/{task.id}").status_code == expected, (label, state)
        if state == "planned":
            assert evidence_id is None      # nothing handed in yet: only the task page to check
        else:
            response = client.get(f"/evidence/{evidence_id}/download")
            assert response.status_code == expected, (label, state)


# The plan-wide rows of the matrix, each as the page that needs it.
PLAN_WHO = {
    "plan.view": ("/plans/", set(USERS)),
    "plan.import": ("/plans/import", {"office", "office2"}),
    "plan.export": ("/plans/{plan}/export.json", {"office", "office2", "viewer"}),
    "overview.view": ("/overview", {"office", "office2", "viewer"}),
    "report.view": ("/reports/", {"office", "office2", "viewer"}),
    "report.generate": ("/reports/new", {"office", "office2"}),
    "audit.view": ("/audit", {"office", "office2"}),
    "admin.manage": ("/admin/users", {"office"}),
    "round.open": ("/rounds/new", {"office", "office2"}),
    "round.view": ("/rounds/", {"office", "office2", "viewer"}),
    "reminders.view": ("/reminders/", {"office", "office2"}),
    "escalation.view": ("/escalations/", {"office", "office2", "viewer"}),
    "notices.log": ("/notices/", {"office", "office2"}),
    # Actions with no page of their own: a POST (with a valid CSRF token) is let through (302) or refused (403).
    "reminders.manage": ("POST /reminders/sweep", {"office"}),
    "escalation.bulletin": ("POST /escalations/bulletin", {"office", "office2"}),
    # Every user opens 考核排名; what a unit's user sees there is their own line (below).
    "scores.view": ("/scores/", set(USERS)),
}


def test_plan_wide_cells(app):
    from auth.permissions import PLAN_ACTIONS
    from models import Plan

    assert set(PLAN_WHO) == set(PLAN_ACTIONS), "every plan-wide action has its row here"
    with app.app_context():
        plan_id = db.session.scalar(select(Plan.id))
    clients = {label: _client(app, label) for label in USERS}
    tokens = {label: csrf_token(clients[label], "/plans/") for label in USERS}
    for action, (path, who) in PLAN_WHO.items():
        for label in USERS:
            if path.startswith("POST "):
                status = clients[label].post(path[5:], data={"csrf_token": tokens[label], "plan": str(plan_id)}
                                             ).status_code
                assert status == (302 if label in who else 403), (action, label, status)
                continue
            status = clients[label].get(path.format(plan=plan_id)).status_code
            assert status == (200 if label in who else 403), (action, label, status)


def test_the_ranking_shows_a_unit_user_their_own_line_and_everyone_else_all(app):
    """scores.view: the office and viewers get every working unit's line; a unit's
    leader or staff gets their own unit's alone (the export is the table)."""
    import csv
    import io

    from models import TaskPart, Unit

    with app.app_context():
        working = set(db.session.scalars(select(Unit.name).join(TaskPart, TaskPart.unit_id == Unit.id)))
        own = {label: _user(label).unit.name for label in USERS}
    for label in USERS:
        data = _client(app, label).get("/scores/?format=csv").get_data(as_text=True).lstrip("\ufeff")
        names = {row["单位"] for row in csv.DictReader(io.StringIO(data))}
        if label in ("office", "office2", "viewer"):
            assert names == working, label
        else:
            assert names == ({own[label]} & working), label


def test_anonymous_is_sent_to_login(app):
    with app.app_context():
        task, part = _subject()
    client = app.test_client()
    assert client.get(f"/tasks/{task.id}").status_code == 302
    assert "/auth/login" in client.get(f"/tasks/{task.id}").headers["Location"]


def test_list_queries_agree_with_the_permission_module(app):
    """The lists filter in SQL (queries.visible_clause); the task page asks
    may(). For every kind of user they must admit exactly the same tasks."""
    from auth.permissions import may
    from models import Task
    from workflow.queries import visible_clause

    with app.app_context():
        tasks = db.session.scalars(select(Task)).all()
        for user in (_user(label) for label in USERS):
            listed = set(db.session.scalars(select(Task.id).where(visible_clause(user))))
            allowed = {t.id for t in tasks if may(user, "task.view", t)}
            assert listed == allowed, user.username
            assert listed, user.username


# ---------------------------------------------------------------- issue 9: the office's rhythm
#
# The actions added with rounds (调度), extension requests (延期申请) and
# milestones (进度节点). Who (``denial``) is checked for every user on the object
# each acts on; when (``refusal``) in every state of that object; and over HTTP
# for the extension and milestone routes (workflow/views/extensions.py; the
# round routes over HTTP: tests/test_rounds.py).

NEW_WHO = {
    "part.extend": {"R.leader", "R.staff"},
    "part.file": {"R.leader", "R.staff"},
    "milestone.propose": {"R.leader", "R.staff"},
    "part.remind": {"office", "office2"},
    "milestone.set": {"office", "office2"},
    "round.close": {"office", "office2"},
    "extension.grant": {"office", "office2"},
    "extension.refuse": {"office", "office2"},
    # Asked or proposed by R.staff: the lead unit's leader decides (the office only
    # when the lead units have no other leader: tests/test_extensions.py).
    "extension.approve": {"L.leader"},
    "extension.decline": {"L.leader"},
    "milestone.approve": {"L.leader"},
    "milestone.refuse": {"L.leader"},
}
# The object each acts on, and the states in which it is open. part.file is open
# only with an open round asking the part (tests/test_rounds.py checks it).
NEW_WHEN = {
    "part.extend": ("part", {"planned", "in_progress"}),
    "part.remind": ("part", {"planned"}),
    "milestone.set": ("part", {"planned", "in_progress"}),
    "milestone.propose": ("part", {"planned", "in_progress"}),
    "extension.approve": ("extension", {"pending_lead"}),
    "extension.decline": ("extension", {"pending_lead"}),
    "extension.grant": ("extension", {"pending_office"}),
    "extension.refuse": ("extension", {"pending_office"}),
    "milestone.approve": ("milestone", {"proposed"}),
    "milestone.refuse": ("milestone", {"proposed"}),
    "round.close": ("round", {"open"}),
}
ROUTED = ("part.extend", "milestone.set", "milestone.propose", "extension.approve", "extension.decline",
          "extension.grant", "extension.refuse", "milestone.approve", "milestone.refuse")


def _future_deadline(app) -> None:
    from datetime import timedelta

    from workflow.timeutil import today_local

    with app.app_context():
        task, _ = _subject()
        task.deadline = today_local() + timedelta(days=60)
        db.session.commit()


def _issue9_objects(app, *, requests: bool = True) -> dict:
    """The subject part in progress, due in 60 days; with ``requests``, a request
    waiting for the lead unit, one waiting for the office and a proposed milestone,
    all by R.staff (rows written directly: the two requests could not both be
    pending through the service)."""
    from datetime import timedelta

    from models import ExtensionRequest, Milestone
    from workflow.timeutil import today_local, utcnow

    _future_deadline(app)
    bring_to(app, "in_progress")
    with app.app_context():
        task, part = _subject()
        ids = {"task": task.id, "part": part.id}
        if requests:
            staff = _user("R.staff")
            for key, state in (("pending_lead", "pending_lead"), ("pending_office", "pending_office")):
                row = ExtensionRequest(part_id=part.id, state=state, requested_by_id=staff.id, requested_at=utcnow(),
                                       old_deadline=task.deadline, new_deadline=task.deadline + timedelta(days=30),
                                       reason="受天气影响。", progress=0)
                db.session.add(row)
                db.session.flush()
                ids[key] = row.id
            milestone = Milestone(part_id=part.id, on=today_local() + timedelta(days=10), percent=20, state="proposed",
                                  proposed_by_id=staff.id, proposed_at=utcnow())
            db.session.add(milestone)
            db.session.flush()
            ids["milestone"] = milestone.id
        db.session.commit()
    return ids


def _issue9_snapshot(app) -> dict:
    from models import AuditEntry, ExtensionRequest, Milestone, Notification

    with app.app_context():
        _, part = _subject()
        return {
            "audit": db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action != "login")),
            "notifications": db.session.scalar(select(func.count(Notification.id))),
            "requests": tuple(db.session.execute(select(ExtensionRequest.id, ExtensionRequest.state)
                                                 .order_by(ExtensionRequest.id)).all()),
            "milestones": tuple(db.session.execute(select(Milestone.id, Milestone.state).order_by(Milestone.id)).all()),
            "deadline": part.deadline, "version": part.version,
        }


def _issue9_request(client, action: str, ids: dict):
    from datetime import timedelta

    from workflow.timeutil import today_local

    token = session_token(client)
    with client.application.app_context():
        _, part = _subject()
        version = part.version
    part_url = f"/tasks/{ids['task']}/parts/{ids['part']}"
    # Not the day of the proposed milestone already there: one proposal a day.
    day = (today_local() + timedelta(days=20)).isoformat()
    if action == "part.extend":
        return client.post(f"{part_url}/extension", data={
            "csrf_token": token, "version": version, "reason": "受天气影响。",
            "new_deadline": (today_local() + timedelta(days=90)).isoformat()})
    if action in ("milestone.set", "milestone.propose"):
        return client.post(f"{part_url}/milestones", data={"csrf_token": token, "version": version,
                                                           "mode": action.split(".")[1], "on": day, "percent": "20"})
    subject, decision = action.split(".")
    if subject == "extension":
        request_id = ids["pending_lead" if decision in ("approve", "decline") else "pending_office"]
        return client.post(f"/extensions/{request_id}/{decision}",
                           data={"csrf_token": token, "version": 1, "reason": "理由充分。"})
    return client.post(f"/milestones/{ids['milestone']}/{decision}",
                       data={"csrf_token": token, "version": version, "reason": "理由充分。"})


def test_every_new_action_has_its_row_for_every_user(app):
    """``denial`` for every user on the object each new action acts on."""
    from datetime import date

    from auth.permissions import LEAD_DECISIONS, OFFICE_ACTIONS, OWNER_ACTIONS, denial
    from models import ExtensionRequest, Milestone, ProgressRound
    from workflow.machine import ACTION_RULES, EVENTS

    on_objects = set(OWNER_ACTIONS) | set(OFFICE_ACTIONS) | set(LEAD_DECISIONS)
    assert {e.action for e in EVENTS if e.action} | set(ACTION_RULES) <= on_objects | set(WHO)
    assert on_objects - set(WHO) == set(NEW_WHO), "every action added since the matrix has its row here"
    ids = _issue9_objects(app)
    with app.app_context():
        _, part = _subject()
        objects = {"part": part, "extension": db.session.get(ExtensionRequest, ids["pending_lead"]),
                   "milestone": db.session.get(Milestone, ids["milestone"]),
                   "round": ProgressRound(plan_id=part.task.item.plan_id, title="2026年12月调度",
                                          due_on=date(2026, 12, 31), state="open")}
        subject_of = {a: NEW_WHEN[a][0] if a in NEW_WHEN else "part" for a in NEW_WHO}
        for action, who in NEW_WHO.items():
            for label in USERS:
                why = denial(_user(label), action, objects[subject_of[action]])
                assert (why is None) == (label in who), (action, label, why)


@pytest.mark.parametrize("state", STATES)
def test_the_part_actions_open_in_their_states(app, state):
    from auth.permissions import can
    from workflow.machine import refusal

    _future_deadline(app)
    bring_to(app, state)
    with app.app_context():
        _, part = _subject()
        for action, (subject, open_in) in NEW_WHEN.items():
            if subject != "part":
                continue
            why = refusal(action, part)
            assert (why is None) == (state in open_in), (action, state, why)
            for label in NEW_WHO[action]:
                assert can(_user(label), action, part) == (state in open_in), (action, state, label)


def test_the_requests_milestones_and_rounds_open_in_their_states():
    from datetime import date

    from models import ExtensionRequest, Milestone, ProgressRound
    from workflow.machine import refusal
    from workflow.vocabulary import ExtensionState, MilestoneState, RoundState

    make = {"extension": lambda s: ExtensionRequest(state=s), "milestone": lambda s: Milestone(state=s),
            "round": lambda s: ProgressRound(state=s, due_on=date(2026, 12, 31))}
    states = {"extension": ExtensionState.values(), "milestone": MilestoneState.values(),
              "round": RoundState.values()}
    for action, (subject, open_in) in NEW_WHEN.items():
        if subject == "part":
            continue
        for state in states[subject]:
            why = refusal(action, make[subject](state))
            assert (why is None) == (state in open_in), (action, state, why)
            if why:
                assert "当前状态为" in why, (action, state)


def test_the_new_routes_refuse_whom_the_matrix_refuses(app):
    """Every forbidden (user, routed action): 403 and nothing changes."""
    ids = _issue9_objects(app)
    clients = {label: _client(app, label) for label in USERS}
    checked = 0
    for action in ROUTED:
        for label in USERS:
            if label in NEW_WHO[action]:
                continue
            before = _issue9_snapshot(app)
            response = _issue9_request(clients[label], action, ids)
            assert response.status_code == 403, (label, action, response.status_code)
            assert _issue9_snapshot(app) == before, (label, action)
            checked += 1
    assert checked == sum(len(USERS) - len(NEW_WHO[a]) for a in ROUTED)


NEW_ALLOWED = [(label, action) for action in ROUTED for label in sorted(NEW_WHO[action])]


@pytest.mark.parametrize("label,action", NEW_ALLOWED)
def test_the_new_routes_accept_whom_the_matrix_allows(app, label, action):
    ids = _issue9_objects(app, requests=action != "part.extend")
    before = _issue9_snapshot(app)
    client = _client(app, label)
    response = _issue9_request(client, action, ids)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'class="flash success"' in page, re.findall(r'class="flash \w+"[^<]*', page)
    after = _issue9_snapshot(app)
    assert after["audit"] == before["audit"] + 1, "an allowed action is audited"
    assert (after["requests"], after["milestones"]) != (before["requests"], before["milestones"])
