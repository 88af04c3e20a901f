"""The task pages over HTTP, on the seed plan, with CSRF on and real services."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from tests.helpers import csrf, unit_username

PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture
def db_template() -> str:
    return "seed"


# ---------------------------------------------------------------- helpers





def form_html(html: str, action: str) -> str | None:
    match = re.search(r'<form[^>]*action="%s"[^>]*>(.*?)</form>' % re.escape(action), html, re.S)
    return match.group(1) if match else None


def version_in(html: str, action: str) -> str:
    form = form_html(html, action)
    assert form is not None, f"no form for {action}"
    return re.search(r'name="version" value="(\d+)"', form).group(1)


def flashes(html: str) -> list[tuple[str, str]]:
    return re.findall(r'class="flash (\w+)" role="alert">([^<]*)<', html)


def act(client, task_id: int, action: str, *, version: bool = True, files=None, **fields):
    """Load the task page as the user sees it, then post the form there (with
    the version the page showed); returns the followed response."""
    page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    data = {"csrf_token": csrf(page.text), **fields}
    if version:
        data["version"] = version_in(page.text, action)
    if files:
        data.update(files)
        return client.post(action, data=data, content_type="multipart/form-data", follow_redirects=True)
    return client.post(action, data=data, follow_redirects=True)


def task_ids(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'href="/tasks/(\d+)(?:#[^"]*)?"', html)}


def unrelated_unit(app, task_id: int) -> int:
    from models import Task, Unit, UnitKind
    from workflow.extensions import db

    with app.app_context():
        task = db.session.get(Task, task_id)
        involved = {u.id for u in task.lead_units} | {p.unit_id for p in task.parts}
        return next(u.id for u in db.session.scalars(select(Unit).order_by(Unit.id))
                    if u.id not in involved and u.kind != UnitKind.OFFICE)


def db_state(app, task_id: int):
    from models import Task
    from workflow.extensions import db

    with app.app_context():
        task = db.session.get(Task, task_id)
        return task.state, [(p.state, p.version, len(p.submissions), len(p.evidence)) for p in task.parts]


# ---------------------------------------------------------------- lists

def test_list_filters_by_state_unit_chapter_and_late(app, login, one_part_task):
    from models import Chapter, Task
    from workflow.due import due_status
    from workflow.extensions import db
    from workflow.timeutil import today_local

    app.config["PER_PAGE"] = 1000
    task_id, part_id, lead, part_unit = one_part_task.ids
    staff = login(one_part_task.part_staff)
    assert "已开始办理" in act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/start").text

    office = login("office")
    with app.app_context():
        tasks = db.session.scalars(select(Task)).all()
        everything = {t.id for t in tasks}
        in_progress = {t.id for t in tasks if t.state == "in_progress"}
        of_unit = {t.id for t in tasks if lead in [u.id for u in t.lead_units]
                   or lead in [p.unit_id for p in t.parts]}
        chapter = db.session.scalars(select(Chapter).order_by(Chapter.number)).all()[1]
        in_chapter = {t.id for t in tasks if t.item.chapter_id == chapter.id}
        late = {t.id for t in tasks if due_status(t, today_local(), 14) == "late"}
        chapter_id = chapter.id

    assert task_ids(office.get("/tasks/").text) == everything
    assert task_ids(office.get("/tasks/?state=in_progress").text) == in_progress == {task_id}
    assert task_ids(office.get(f"/tasks/?unit={lead}").text) == of_unit
    assert task_ids(office.get(f"/tasks/?chapter={chapter_id}").text) == in_chapter
    late_page = office.get("/tasks/?due=late")
    assert task_ids(late_page.text) == late and 0 < len(late) < len(everything)
    assert "已逾期" in late_page.text
    both = office.get(f"/tasks/?unit={lead}&due=late&state=planned").text
    assert task_ids(both) == {t for t in of_unit & late if t != task_id}
    # Malformed filters are ignored with a note, never an error page.
    bad = office.get("/tasks/?state=nonsense&unit=abc")
    assert bad.status_code == 200 and task_ids(bad.text) == everything and "已忽略" in bad.text


def test_list_near_due_text_search_and_pagination(app, login):
    from models import Task
    from workflow.extensions import db
    from workflow.timeutil import today_local

    with app.app_context():
        task = db.session.scalars(select(Task).where(Task.long_term.is_(False)).order_by(Task.id)).first()
        task.deadline = today_local() + timedelta(days=3)
        db.session.commit()
        near_id, words = task.id, task.text[5:15]
        total = db.session.query(Task).count()
        with_percent = {t.id for t in db.session.scalars(select(Task))
                        if "%" in t.text + (t.deadline_text or "") + (t.item.subtitle or "")}
    office = login("office")
    page = office.get("/tasks/?due=near")
    assert task_ids(page.text) == {near_id} and "临期" in page.text
    assert near_id in task_ids(office.get("/tasks/?q=" + quote(words)).text)
    # "%" is a literal in the search, not a wildcard.
    app.config["PER_PAGE"] = 1000
    assert task_ids(office.get("/tasks/?q=" + quote("%")).text) == with_percent
    assert task_ids(office.get("/tasks/?q=" + quote("七网%项目")).text) == set()
    app.config["PER_PAGE"] = 30

    first, second = office.get("/tasks/"), office.get("/tasks/?page=2")
    per_page = 30
    assert len(task_ids(first.text)) == per_page and task_ids(first.text).isdisjoint(task_ids(second.text))
    assert f"共 {total} 条" in first.text
    assert office.get("/tasks/?page=999").status_code == 200


def test_unit_user_sees_only_tasks_of_their_unit(app, login, one_part_task):
    from models import Task
    from workflow.extensions import db

    app.config["PER_PAGE"] = 1000
    task_id, _, lead, part_unit = one_part_task.ids
    other = unrelated_unit(app, task_id)
    with app.app_context():
        mine = {t.id for t in db.session.scalars(select(Task))
                if other in [u.id for u in t.lead_units] or other in [p.unit_id for p in t.parts]}
    client = login(unit_username(other, "staff"))
    assert task_ids(client.get("/tasks/").text) == mine
    assert task_id not in mine
    assert client.get(f"/tasks/{task_id}").status_code == 403


def test_todo_and_verify_lists_for_unit_users(app, login, one_part_task):
    from models import TaskPart
    from workflow.extensions import db

    task_id, part_id, lead, part_unit = one_part_task.ids
    with app.app_context():
        open_parts = db.session.scalars(select(TaskPart).where(TaskPart.unit_id == part_unit)).all()
        open_tasks = {p.task_id for p in open_parts}
    app.config["PER_PAGE"] = 1000
    staff = login(one_part_task.part_staff)
    todo = staff.get("/tasks/todo")
    assert todo.status_code == 200 and task_ids(todo.text) == open_tasks

    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/start")
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/evidence", text="工作台账已建立。")
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/submit", statement="已完成。")
    # Submitted: no longer ours to act on.
    assert task_ids(staff.get("/tasks/todo").text) == open_tasks - {task_id}

    leader = login(one_part_task.lead_leader)
    verify = leader.get("/tasks/verify")
    assert task_ids(verify.text) == {task_id} and "第 1 次提交" in verify.text
    assert task_id in task_ids(leader.get("/tasks/todo").text)
    assert task_id in task_ids(leader.get("/").text)        # the home summary lists it too
    # The part's own unit does not verify it.
    assert task_id not in task_ids(login(one_part_task.part_leader).get("/tasks/verify").text)


# ---------------------------------------------------------------- the task page

def test_task_page_shows_only_permitted_forms(app, login, one_part_task):
    task_id, part_id, lead, part_unit = one_part_task.ids
    base = f"/tasks/{task_id}/parts/{part_id}"

    def forms(client):
        html = client.get(f"/tasks/{task_id}").text
        return {name for name, action in (
            ("start", f"{base}/start"), ("progress", f"{base}/progress"), ("evidence", f"{base}/evidence"),
            ("submit", f"{base}/submit"), ("verify", f"{base}/verify"), ("return", f"{base}/return"),
            ("close", f"/tasks/{task_id}/close"), ("reopen", f"/tasks/{task_id}/reopen"),
            ("urge", f"/tasks/{task_id}/urge")) if form_html(html, action) is not None}

    staff, leader = login(one_part_task.part_staff), login(one_part_task.lead_leader)
    office, viewer = login("office"), login("leader")
    assert forms(staff) == {"start"}
    assert forms(leader) == set()
    assert forms(office) == {"urge"}
    assert forms(viewer) == set()
    page = office.get(f"/tasks/{task_id}").text
    assert f'href="/tasks/{task_id}/edit"' in page
    assert f'href="/tasks/{task_id}/edit"' not in viewer.get(f"/tasks/{task_id}").text

    act(staff, task_id, f"{base}/start")
    assert forms(staff) == {"progress", "evidence", "submit"}
    act(staff, task_id, f"{base}/evidence", text="材料")
    act(staff, task_id, f"{base}/submit", statement="完成")
    assert forms(staff) == set()
    assert forms(leader) == {"verify", "return"}
    assert forms(login(unit_username(lead, "staff"))) == set()     # staff of the lead unit do not verify
    assert forms(office) == set()


def test_task_page_shows_source_units_and_deadline(app, login, one_part_task):
    from models import Task
    from workflow.extensions import db

    task_id = one_part_task.task_id
    with app.app_context():
        task = db.session.get(Task, task_id)
        expected = [task.item.policy_text[:20], task.text[:20], task.lead_units[0].name, task.parts[0].unit.name,
                    task.deadline.isoformat()]
        if task.item.goal:
            expected.append(task.item.goal[:20])
        if task.deadline_text:
            expected.append(task.deadline_text)
    html = login("leader").get(f"/tasks/{task_id}").text
    from html import unescape

    text = unescape(html)
    for fragment in expected:
        assert fragment in text
    assert "已逾期" in text     # the seed's deadlines are in 2022


def test_full_cycle_with_timeline(app, login, one_part_task):
    from models import AuditEntry, Evidence, Submission
    from workflow.extensions import db

    task_id, part_id, lead, part_unit = one_part_task.ids
    base = f"/tasks/{task_id}/parts/{part_id}"
    staff, leader, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")

    def ok(response, message):
        assert response.status_code == 200
        assert ("success", message) in flashes(response.text), flashes(response.text)

    ok(act(staff, task_id, f"{base}/start"), "已开始办理。")
    ok(act(staff, task_id, f"{base}/progress", percent="40", note="已完成调查摸底"), "进度已填报。")
    ok(act(staff, task_id, f"{base}/evidence", text="已召开专题会议，明确责任分工。"), "材料已添加（提交时一并报送）。")
    ok(act(staff, task_id, f"{base}/evidence", description="会议纪要",
           files={"file": (io.BytesIO(PDF), "会议纪要（第一次）.pdf")}), "文件已上传（提交时一并报送）。")
    ok(act(staff, task_id, f"{base}/submit", statement="已按要求完成。"), "已提交，等待牵头单位核验。")
    ok(act(leader, task_id, f"{base}/return", reason="缺少验收材料，请补充。"), "已退回，并已通知承办单位。")
    page = staff.get(f"/tasks/{task_id}").text
    assert "缺少验收材料，请补充。" in page and "已退回" in page
    ok(act(staff, task_id, f"{base}/evidence", text="补充：验收报告已归档。"), "材料已添加（提交时一并报送）。")
    ok(act(staff, task_id, f"{base}/submit", statement="已补充验收材料。"), "已提交，等待牵头单位核验。")
    ok(act(leader, task_id, f"{base}/verify"), "已核验通过。")
    assert db_state(app, task_id)[0] == "verified"
    ok(act(office, task_id, f"/tasks/{task_id}/close"), "任务已办结。")
    assert db_state(app, task_id)[0] == "closed"

    with app.app_context():
        submissions = db.session.scalars(select(Submission).where(Submission.part_id == part_id)
                                         .order_by(Submission.number)).all()
        assert [(s.number, s.outcome) for s in submissions] == [(1, "returned"), (2, "verified")]
        assert [len(s.evidence) for s in submissions] == [2, 1]
        assert db.session.scalar(select(Evidence).where(Evidence.kind == "file")).filename == "会议纪要（第一次）.pdf"
        steps = [(e.action, (e.details or {}).get("event"), e.to_state) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.task_id == task_id).order_by(AuditEntry.seq))]
    part_steps = [s for s in steps if s[0] != "task_state"]
    assert part_steps == [
        ("transition", "start", "in_progress"), ("progress", None, None), ("evidence_added", None, None),
        ("evidence_added", None, None), ("transition", "submit", "submitted"),
        ("transition", "return", "in_progress"), ("evidence_added", None, None),
        ("transition", "submit", "submitted"), ("transition", "verify", "verified"),
        ("transition", "close", "closed")]

    page = leader.get(f"/tasks/{task_id}").text
    timeline = page[page.index('class="timeline"'):]
    order = ["开始办理", "进度填报", "已召开专题会议", "会议纪要（第一次）.pdf", "第 1 次提交", "退回",
             "缺少验收材料，请补充。", "补充：验收报告已归档。", "第 2 次提交", "核验通过", "办结"]
    positions = [timeline.index(word) for word in order]
    assert positions == sorted(positions), list(zip(order, positions))
    assert timeline.count("<li") >= len(steps)
    # The submissions are listed with their evidence and download links.
    assert "第 1 次提交" in page and "第 2 次提交" in page
    assert re.search(r'href="/evidence/\d+/download"', page)


def test_stale_version_warns_and_changes_nothing(app, login, one_part_task):
    task_id, part_id, lead, part_unit = one_part_task.ids
    base = f"/tasks/{task_id}/parts/{part_id}"
    first, second = login(one_part_task.part_staff), login(one_part_task.part_leader)
    act(first, task_id, f"{base}/start")
    page = second.get(f"/tasks/{task_id}").text          # both see version N
    old_version = version_in(page, f"{base}/progress")
    act(first, task_id, f"{base}/progress", percent="30", note="第一位用户的进度")
    before = db_state(app, task_id)
    response = second.post(f"{base}/progress", data={"csrf_token": csrf(page), "version": old_version,
                                                      "percent": "90", "note": "第二位用户的进度"},
                           follow_redirects=True)
    assert ("warning", "该任务刚刚已被他人更新，您的操作未生效。页面已刷新为最新状态，请确认后再操作。") in flashes(response.text)
    assert db_state(app, task_id) == before
    assert "第二位用户的进度" not in response.text
    # Without any version the request is refused too, never applied blindly.
    response = second.post(f"{base}/progress", data={"csrf_token": csrf(page), "percent": "90", "note": "x"},
                           follow_redirects=True)
    assert flashes(response.text)[0][0] == "danger" and db_state(app, task_id) == before


def test_return_without_reason_and_submit_without_evidence_are_refused(app, login, one_part_task):
    task_id, part_id, lead, part_unit = one_part_task.ids
    base = f"/tasks/{task_id}/parts/{part_id}"
    staff, leader = login(one_part_task.part_staff), login(one_part_task.lead_leader)
    act(staff, task_id, f"{base}/start")
    response = act(staff, task_id, f"{base}/submit", statement="完成")
    assert ("danger", "提交前请至少添加一项佐证材料（文件或文字）。") in flashes(response.text)
    act(staff, task_id, f"{base}/evidence", text="材料")
    act(staff, task_id, f"{base}/submit", statement="完成")
    before = db_state(app, task_id)
    response = act(leader, task_id, f"{base}/return", reason="   ")
    assert ("danger", "请填写理由。") in flashes(response.text)
    assert db_state(app, task_id) == before and before[1][0][0] == "submitted"


def test_bad_requests_get_404_403_or_a_message(app, login, one_part_task):
    task_id, part_id, lead, part_unit = one_part_task.ids
    other_task = task_id + 1
    staff = login(one_part_task.part_staff)
    token = csrf(staff.get(f"/tasks/{task_id}").text)
    # A part that does not belong to the task in the URL.
    assert staff.post(f"/tasks/{other_task}/parts/{part_id}/start",
                      data={"csrf_token": token, "version": "1"}).status_code == 404
    assert staff.post(f"/tasks/{task_id}/parts/{part_id}/fly", data={"csrf_token": token}).status_code == 404
    assert staff.get("/tasks/999999").status_code == 404
    # Ids beyond the integer range, odd page numbers and query keys that
    # url_for would take for its own parameters: answered, never a 500.
    assert staff.get("/tasks/99999999999999999999").status_code == 404
    assert staff.get("/evidence/99999999999999999999/download").status_code == 404
    for url in ("/tasks/?page=²", "/tasks/?endpoint=x&_external=1", "/tasks/?unit=99999999999999999999",
                "/tasks/todo?page=99999999999", "/inbox?page=-1"):
        assert staff.get(url).status_code == 200, url
    # Someone who may not do it: 403, and nothing changes.
    viewer = login("leader")
    before = db_state(app, task_id)
    assert viewer.post(f"/tasks/{task_id}/parts/{part_id}/start",
                       data={"csrf_token": csrf(viewer.get("/").text), "version": "1"}).status_code == 403
    assert staff.post(f"/tasks/{task_id}/close", data={"csrf_token": token, "version": "1"}).status_code == 403
    assert db_state(app, task_id) == before
    # No CSRF token: refused.
    assert staff.post(f"/tasks/{task_id}/parts/{part_id}/start", data={"version": "1"}).status_code == 400
    # Evidence with neither a file nor a text; a file whose content is not what its name says.
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/start")
    response = act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/evidence", text="")
    assert ("danger", "请选择要上传的文件，或填写文字材料。") in flashes(response.text)
    response = act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/evidence",
                   files={"file": (io.BytesIO(b"MZ not a pdf"), "报告.pdf")})
    assert flashes(response.text)[0][0] == "danger" and "不符" in flashes(response.text)[0][1]
    assert db_state(app, task_id)[1][0][3] == 0
    import os

    uploads = app.config["UPLOAD_FOLDER"]
    assert not os.path.exists(uploads) or not any(files for _, _, files in os.walk(uploads))


def test_pending_evidence_can_be_withdrawn(app, login, one_part_task):
    from models import Evidence
    from workflow.extensions import db

    task_id, part_id, lead, part_unit = one_part_task.ids
    staff = login(one_part_task.part_staff)
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/start")
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/evidence", text="要撤回的材料")
    with app.app_context():
        evidence_id = db.session.scalar(select(Evidence.id))
    action = f"/tasks/{task_id}/evidence/{evidence_id}/delete"
    other = unrelated_unit(app, task_id)
    token = csrf(staff.get("/").text)
    # Not of the task in the URL: 404; of someone else's unit: 403.
    assert staff.post(f"/tasks/{task_id + 1}/evidence/{evidence_id}/delete",
                      data={"csrf_token": token}).status_code == 404
    outsider = login(unit_username(other, "staff"))
    assert outsider.post(action, data={"csrf_token": csrf(outsider.get("/").text)}).status_code == 403
    response = act(staff, task_id, action, version=False)
    assert ("success", "材料已撤回。") in flashes(response.text)
    with app.app_context():
        assert db.session.get(Evidence, evidence_id) is None


def test_evidence_download_headers_and_permissions(app, login, one_part_task):
    from models import Evidence
    from workflow.extensions import db

    task_id, part_id, lead, part_unit = one_part_task.ids
    staff = login(one_part_task.part_staff)
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/start")
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/evidence",
        files={"file": (io.BytesIO(PDF), "验收报告（终稿）.pdf")})
    with app.app_context():
        evidence_id = db.session.scalar(select(Evidence.id).where(Evidence.kind == "file"))

    for client in (staff, login(one_part_task.lead_leader), login("leader")):
        response = client.get(f"/evidence/{evidence_id}/download")
        assert response.status_code == 200
        assert response.data == PDF
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment")
        assert "filename*=UTF-8''" + quote("验收报告（终稿）.pdf") in disposition
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.mimetype == "application/pdf"
    outsider = login(unit_username(unrelated_unit(app, task_id), "leader"))
    assert outsider.get(f"/evidence/{evidence_id}/download").status_code == 403
    # A text evidence downloads as a UTF-8 text file, to the same people.
    act(staff, task_id, f"/tasks/{task_id}/parts/{part_id}/evidence", text="工作台账已建立。")
    with app.app_context():
        text_id = db.session.scalar(select(Evidence.id).where(Evidence.kind == "text"))
    response = staff.get(f"/evidence/{text_id}/download")
    assert response.status_code == 200 and response.data.decode("utf-8") == "工作台账已建立。"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert outsider.get(f"/evidence/{text_id}/download").status_code == 403
    assert staff.get("/evidence/999999/download").status_code == 404


def test_notifications_reach_the_right_inboxes(app, login, one_part_task):
    from models import Notification, User
    from workflow.extensions import db

    task_id, part_id, lead, part_unit = one_part_task.ids
    base = f"/tasks/{task_id}/parts/{part_id}"
    staff, leader, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")
    act(staff, task_id, f"{base}/start")
    act(office, task_id, f"/tasks/{task_id}/urge", version=False, message="请于本周内提交")
    act(staff, task_id, f"{base}/evidence", text="材料")
    act(staff, task_id, f"{base}/submit", statement="完成")
    act(leader, task_id, f"{base}/return", reason="请补充照片")

    def kinds(username):
        with app.app_context():
            uid = db.session.scalar(select(User.id).where(User.username == username))
            return {(n.kind, n.task_id) for n in db.session.scalars(select(Notification).where(Notification.user_id == uid))}

    assert ("urged", task_id) in kinds(one_part_task.part_staff)
    assert ("returned", task_id) in kinds(one_part_task.part_leader)
    assert ("submitted", task_id) in kinds(one_part_task.lead_leader)
    assert ("submitted", task_id) not in kinds(one_part_task.part_leader)
    outsider = unit_username(unrelated_unit(app, task_id), "leader")
    assert not kinds(outsider)

    inbox = staff.get("/inbox").text
    assert "请于本周内提交" in inbox and "请补充照片" in inbox
    assert re.search(r'class="count"[^>]*>2<', inbox)            # unread count in the header
    # Unread first: the newest unread (returned) leads the list.
    assert inbox.index("请补充照片") < inbox.index("请于本周内提交")
    with app.app_context():
        note_id = db.session.scalar(select(Notification.id).join(User, User.id == Notification.user_id).where(
            Notification.kind == "urged", User.username == one_part_task.part_staff))
    token = csrf(inbox)
    # Another user's notification is not theirs to mark.
    assert leader.post(f"/inbox/{note_id}/read", data={"csrf_token": csrf(leader.get("/inbox").text)}).status_code == 404
    response = staff.post(f"/inbox/{note_id}/read", data={"csrf_token": token, "next": f"/tasks/{task_id}"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/tasks/{task_id}")
    assert staff.post(f"/inbox/{note_id}/read", data={"csrf_token": token,
                                                      "next": "//evil.example/"}).headers["Location"].endswith("/inbox")
    assert re.search(r'class="count"[^>]*>1<', staff.get("/inbox").text)
    staff.post("/inbox/read-all", data={"csrf_token": token})
    assert 'class="count"' not in staff.get("/inbox").text


def test_reopen_and_edit_by_the_office(app, login, one_part_task):
    from models import AuditEntry, Task
    from workflow.extensions import db

    task_id, part_id, lead, part_unit = one_part_task.ids
    base = f"/tasks/{task_id}/parts/{part_id}"
    staff, leader, office = login(one_part_task.part_staff), login(one_part_task.lead_leader), login("office")

    page = office.get(f"/tasks/{task_id}/edit")
    assert page.status_code == 200
    token = csrf(page.text)
    version = re.search(r'name="version"[^>]*value="(\d+)"', page.text).group(1)
    response = office.post(f"/tasks/{task_id}/edit", data={
        "csrf_token": token, "version": version, "text": "修改后的任务内容", "deadline": "2030-06-30",
        "deadline_text": "2030年6月底前"}, follow_redirects=True)
    assert flashes(response.text)[0][0] == "success"
    # Long-term with a date: refused with a message, nothing saved.
    response = office.post(f"/tasks/{task_id}/edit", data={
        "csrf_token": token, "version": str(int(version) + 1), "text": "x", "deadline": "2031-01-01",
        "long_term": "y"})
    assert response.status_code == 400 and "长期任务不能同时设置完成时限" in response.text
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert (task.text, task.deadline.isoformat(), task.long_term) == ("修改后的任务内容", "2030-06-30", False)
        edit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "task_edited"))
        assert edit.details["deadline"]["new"] == "2030-06-30"
    assert login(one_part_task.lead_leader).get(f"/tasks/{task_id}/edit").status_code == 403

    act(staff, task_id, f"{base}/start")
    act(staff, task_id, f"{base}/evidence", text="材料")
    act(staff, task_id, f"{base}/submit", statement="完成")
    act(leader, task_id, f"{base}/verify")
    act(office, task_id, f"/tasks/{task_id}/close")
    response = act(office, task_id, f"/tasks/{task_id}/reopen", reason="")
    assert ("danger", "请填写理由。") in flashes(response.text) and db_state(app, task_id)[0] == "closed"
    response = act(office, task_id, f"/tasks/{task_id}/reopen", reason="核查发现数据有误")
    assert flashes(response.text)[0][0] == "success"
    assert db_state(app, task_id)[0] == "in_progress"
    assert "核查发现数据有误" in response.text


def test_home_overview_and_page_query_counts(app, login, count_queries):
    from models import Task
    from workflow.extensions import db

    office, viewer = login("office"), login("leader")
    with app.app_context():
        total = db.session.query(Task).count()
        big = max(db.session.scalars(select(Task)), key=lambda t: len(t.parts))
        big_id, big_parts = big.id, len(big.parts)
        small_id = next(t.id for t in db.session.scalars(select(Task)) if len(t.parts) == 1)
    for client in (office, viewer):
        for url in ("/", "/overview"):
            page = client.get(url)
            assert page.status_code == 200 and "按章节" in page.text and "按牵头单位" in page.text
            assert f">{total}<" in page.text
    assert login("u02.staff").get("/overview").status_code == 403

    office.get("/tasks/?state=verified")   # the header's counts, kept until the trail moves, are kept for both
    # Each page's first view renders it (a kept page, head_cache.cached_page, is not asked again).
    with count_queries() as statements:
        office.get(f"/tasks/{small_id}")
    small = len(statements)
    with count_queries() as statements:
        assert office.get(f"/tasks/{big_id}").status_code == 200
    big_count = len(statements)
    with count_queries() as statements:
        assert office.get(f"/tasks/{big_id}").status_code == 200
    kept = len(statements)
    with count_queries() as statements:
        office.get("/tasks/")
    list_count = len(statements)
    assert big_parts >= 10
    # The same handful of queries whatever the number of parts or rows.
    assert big_count == small, (small, big_count)
    assert big_count <= 30 and list_count <= 20, (big_count, list_count)
    assert kept < small, (kept, small)
