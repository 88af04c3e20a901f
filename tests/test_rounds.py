"""Progress rounds (调度): opening by scope, filing on time and late, one filing
per part, bulk filing all or nothing, who may file, closing into a real 调度通报
that is archived and verifiable (docs/rounds.md)."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf, csrf_token, row_counts, unit_user, unit_username, user_named
from tests.test_concurrency import server  # noqa: F401  (the fixture: a real threaded server on the test app)
from workflow.extensions import db

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="poppler-utils (pdftotext) not installed: scripts/setup.sh --test")

TINY_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


@pytest.fixture
def db_template() -> str:
    return "seed"


def set_clock(app, day: date) -> None:
    """Move the app's clock (honoured in demo mode only, as in production it never moves)."""
    from workflow.timeutil import configure_clock

    app.config.update(LUOSHI_ENV="demo", LUOSHI_TODAY=day.isoformat())
    configure_clock(app)


def today(app) -> date:
    from workflow.timeutil import today_local

    with app.app_context():
        return today_local()


def open_parts_query(plan_id):
    from models import Item, Task, TaskPart

    return (select(TaskPart).join(Task).join(Item)
            .where(Item.plan_id == plan_id, TaskPart.state.in_(("planned", "in_progress"))))


def open_round(app, **scope):
    """Open a round through the service as the office; returns its id."""
    from models import Plan
    from workflow import round_services

    with app.app_context():
        plan = db.session.scalar(select(Plan).order_by(Plan.id))
        kwargs = {"kind": "monthly", "title": scope.pop("title", "2022年6月调度"),
                  "due_on": scope.pop("due_on", None) or today(app) + timedelta(days=5), **scope}
        round_ = round_services.open_round(plan, user_named("office"), **kwargs)
        db.session.commit()
        return round_.id


def entries_of(app, round_id):
    from models import RoundPart

    with app.app_context():
        return [(e.id, e.part_id, e.part.unit_id, e.part.task_id)
                for e in db.session.scalars(select(RoundPart).where(RoundPart.round_id == round_id)
                                            .order_by(RoundPart.id))]


def unit_with_entries(app, round_id, at_least: int):
    by_unit: dict[int, list] = {}
    for entry_id, part_id, unit_id, task_id in entries_of(app, round_id):
        by_unit.setdefault(unit_id, []).append((entry_id, part_id, task_id))
    unit_id = next(u for u, rows in sorted(by_unit.items()) if len(rows) >= at_least)
    return unit_id, by_unit[unit_id]


def file_on_task_page(client, task_id, entry_id, percent=40, note="已完成方案起草。", files=()):
    page = client.get(f"/tasks/{task_id}")
    data = {"csrf_token": csrf(page.text), "percent": str(percent), "note": note}
    if files:
        data["file"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post(f"/rounds/entries/{entry_id}/file", data=data, content_type="multipart/form-data",
                       follow_redirects=True)


# ---------------------------------------------------------------- opening and scope

def test_a_round_of_the_plan_fixes_every_open_part_audits_each_and_tells_each_unit_once(app):
    from models import AuditEntry, Notification, Plan, ProgressRound, TaskPart, User

    with app.app_context():
        plan_id = db.session.scalar(select(Plan.id))
        # One part already handed in: it is not asked for progress.
        handed_in = db.session.scalars(open_parts_query(plan_id).order_by(TaskPart.id)).first()
        handed_in.state = "submitted"
        db.session.commit()
        handed_in_id = handed_in.id
        expected = sorted(p.id for p in db.session.scalars(open_parts_query(plan_id)))
    round_id = open_round(app, title="2022年6月调度")
    with app.app_context():
        round_ = db.session.get(ProgressRound, round_id)
        assert round_.state == "open" and round_.scope == "全方案" and round_.opened_by.username == "office"
        assert sorted(e.part_id for e in round_.entries) == expected and handed_in_id not in expected
        audited = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "round_opened")).all()
        assert sorted(a.part_id for a in audited) == expected
        assert all(a.details["round"] == round_id for a in audited)
        units = {db.session.get(TaskPart, pid).unit_id for pid in expected}
        notices = db.session.scalars(select(Notification).where(Notification.kind == "round_opened")).all()
        users = db.session.scalars(select(User).where(User.unit_id.in_(units), User.active.is_(True))).all()
        # Each user of each unit in scope: one notice, naming the round and its due date.
        assert sorted(n.user_id for n in notices) == sorted(u.id for u in users)
        due = round_.due_on.isoformat()
        assert all("2022年6月调度" in n.message and due in n.message for n in notices)


def test_a_chapter_round_covers_only_that_chapter(app):
    from models import Chapter, Item, ProgressRound, Task, TaskPart
    from workflow.reports.data import chinese_number

    with app.app_context():
        chapter = db.session.scalars(select(Chapter).order_by(Chapter.number)).all()[1]
        chapter_id, plan_id = chapter.id, chapter.plan_id
        heading = chapter.heading(chinese_number)
        expected = sorted(db.session.scalars(open_parts_query(plan_id).where(Item.chapter_id == chapter_id)
                                             .with_only_columns(TaskPart.id)))
        assert expected
    round_id = open_round(app, chapter_id=chapter_id)
    with app.app_context():
        round_ = db.session.get(ProgressRound, round_id)
        assert sorted(e.part_id for e in round_.entries) == expected
        assert all(e.part.task.item.chapter_id == chapter_id for e in round_.entries)
        assert round_.scope == heading and heading.startswith("二、")
        assert db.session.scalar(select(func.count(Task.id))) > len(expected)


def test_a_units_round_covers_only_those_units(app):
    from models import ProgressRound, TaskPart, Unit

    with app.app_context():
        unit_ids = sorted(db.session.scalars(select(TaskPart.unit_id).distinct()))[:2]
        names = [db.session.get(Unit, u).name for u in unit_ids]
    round_id = open_round(app, unit_ids=unit_ids)
    with app.app_context():
        round_ = db.session.get(ProgressRound, round_id)
        expected = sorted(db.session.scalars(open_parts_query(round_.plan_id)
                                             .where(TaskPart.unit_id.in_(unit_ids)).with_only_columns(TaskPart.id)))
        assert sorted(e.part_id for e in round_.entries) == expected
        assert all(name in round_.scope for name in names)


def test_the_task_lists_selection_prefills_the_form_and_opens_a_round_of_those_tasks(app, login):
    from models import ProgressRound, Task

    with app.app_context():
        tasks = db.session.scalars(select(Task).order_by(Task.id).limit(3)).all()
        ids = [t.id for t in tasks]
        expected = sorted(p.id for t in tasks for p in t.parts)
    office = login("office")
    token = csrf_token(office, "/tasks/")
    # The list's bulk form posts only its selection: the form comes back, prefilled, nothing opened.
    page = office.post("/rounds/new", data={"csrf_token": token, "task_ids": [str(i) for i in ids]})
    assert page.status_code == 200
    for task_id in ids:
        assert f'name="task_ids" value="{task_id}"' in page.text
    with app.app_context():
        assert db.session.scalar(select(func.count(ProgressRound.id))) == 0
    due = (today(app) + timedelta(days=7)).isoformat()
    response = office.post("/rounds/new", data={
        "csrf_token": csrf(page.text), "confirm": "1", "plan": re.search(
            r'<option selected value="(\d+)"|<option value="(\d+)" selected', page.text).group(0).split('"')[1],
        "kind": "adhoc", "title": "专项调度：重点任务", "due_on": due, "instructions": "报送本月进展",
        "task_ids": [str(i) for i in ids]}, follow_redirects=True)
    assert "已发起“专项调度：重点任务”" in response.text
    with app.app_context():
        round_ = db.session.scalar(select(ProgressRound))
        assert round_.kind == "adhoc" and round_.instructions == "报送本月进展"
        assert sorted(e.part_id for e in round_.entries) == expected
        assert round_.scope.startswith("所选任务（3 项）")


def _new_round_post(client, plan_id, **fields):
    page = client.get("/rounds/new")
    data = {"csrf_token": csrf(page.text), "confirm": "1", "plan": str(plan_id), "kind": "monthly", "title": "6月调度",
            "due_on": (date.today() + timedelta(days=30)).isoformat(), **fields}
    return client.post("/rounds/new", data=data)


def test_the_new_round_form_refuses_bad_input_in_chinese_and_opens_nothing(app, login):
    from models import AuditEntry, Chapter, Plan, ProgressRound, Unit

    with app.app_context():
        other = Plan(title="另一方案", source_filename="x.txt", source_sha256="f" * 64)
        db.session.add(other)
        db.session.flush()
        foreign_chapter = Chapter(plan_id=other.id, number=1, title="别的章")
        db.session.add(foreign_chapter)
        db.session.commit()
        foreign_chapter_id = foreign_chapter.id
        office_unit = db.session.scalar(select(Unit.id).where(Unit.kind == "office"))
        seed_plan = db.session.scalar(select(Plan.id).where(Plan.id != other.id))
    office = login("office")
    with app.app_context():
        before = row_counts(db, ProgressRound, AuditEntry)
    yesterday = (today(app) - timedelta(days=1)).isoformat()
    cases = [({"due_on": yesterday}, "报送截止日期不能早于今天"),
             ({"title": ""}, "请填写调度名称"),
             ({"due_on": "2022-13-45"}, None),
             ({"chapter": str(foreign_chapter_id)}, "所选章节不属于该方案"),
             ({"units": [str(office_unit)]}, None)]
    for fields, message in cases:
        response = _new_round_post(office, seed_plan, **fields)
        assert response.status_code == 400, fields
        assert re.search(r'class="errors">[^<]*[\u4e00-\u9fff]', response.text), fields
        if message:
            assert message in response.text, fields
    with app.app_context():
        assert row_counts(db, ProgressRound, AuditEntry) == before


def test_a_scope_with_nothing_open_is_refused(app):
    from models import Plan, ProgressRound, Task
    from workflow import round_services
    from workflow.services import Refused

    with app.app_context():
        task = db.session.scalars(select(Task).order_by(Task.id)).first()
        for part in task.parts:
            part.state = "verified"
        db.session.commit()
        plan = db.session.scalar(select(Plan))
        with pytest.raises(Refused, match="没有尚未提交的任务"):
            round_services.open_round(plan, user_named("office"), kind="weekly", title="周调度",
                                      due_on=today(app), task_ids=[task.id])
        db.session.rollback()
        assert db.session.scalar(select(func.count(ProgressRound.id))) == 0


def test_only_the_office_opens_and_closes_rounds(app, login):
    round_id = open_round(app)
    _entry_id, _part_id, unit_id, _task_id = entries_of(app, round_id)[0]
    for username in (unit_username(unit_id, "leader"), unit_username(unit_id, "staff")):
        client = login(username)
        assert client.get("/rounds/").status_code == 403
        assert client.get("/rounds/new").status_code == 403
        assert client.get(f"/rounds/{round_id}").status_code == 403
        token = csrf_token(client, "/tasks/todo")
        assert client.post(f"/rounds/{round_id}/close", data={"csrf_token": token, "version": "1"}).status_code == 403
    assert login("office").get("/rounds/999999").status_code == 404


# ---------------------------------------------------------------- filing

def test_filing_on_time_records_the_note_without_starting_the_part(app, login):
    from models import AuditEntry, Evidence, ProgressNote, RoundPart, TaskPart

    round_id = open_round(app)
    entry_id, part_id, unit_id, task_id = entries_of(app, round_id)[0]
    staff = login(unit_username(unit_id, "staff"))
    page = staff.get(f"/tasks/{task_id}").text
    assert "本轮调度：请于" in page and f'action="/rounds/entries/{entry_id}/file"' in page
    response = file_on_task_page(staff, task_id, entry_id, percent=30, note="完成调研，形成初稿。",
                                 files=[("调研报告.pdf", TINY_PDF)])
    assert "本轮调度进展已报送" in response.text and "记为逾期报送" not in response.text
    with app.app_context():
        entry = db.session.get(RoundPart, entry_id)
        part = db.session.get(TaskPart, part_id)
        assert entry.filed_at is not None and entry.late is False
        assert entry.note.percent == 30 and entry.note.note == "完成调研，形成初稿。"
        assert part.state == "planned" and part.progress == 30
        assert db.session.scalar(select(func.count(ProgressNote.id)).where(ProgressNote.part_id == part_id)) == 1
        files = db.session.scalars(select(Evidence).where(Evidence.part_id == part_id)).all()
        assert [(e.filename, e.progress_note_id, e.is_pending) for e in files] == [("调研报告.pdf", entry.note_id, True)]
        audited = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "round_filed"))
        assert audited.part_id == part_id and audited.details["round"] == round_id
        assert audited.details["late"] is False and audited.details["percent"] == 30
    # Filed: the form is gone from the task page.
    assert f'action="/rounds/entries/{entry_id}/file"' not in staff.get(f"/tasks/{task_id}").text


def test_filing_after_the_due_date_is_late_by_the_china_date(app, login):
    from models import RoundPart

    due = today(app)
    round_id = open_round(app, due_on=due)
    first, _part, unit_id, task_id = entries_of(app, round_id)[0]
    staff = login(unit_username(unit_id, "staff"))
    # On the due date itself: on time.
    set_clock(app, due)
    file_on_task_page(staff, task_id, first)
    rows = [r for r in entries_of(app, round_id) if r[0] != first]
    second, _part, unit2, task2 = rows[0]
    set_clock(app, due + timedelta(days=1))
    other = login(unit_username(unit2, "staff"))
    response = file_on_task_page(other, task2, second)
    assert "记为逾期报送" in response.text
    with app.app_context():
        assert db.session.get(RoundPart, first).late is False
        late = db.session.get(RoundPart, second)
        assert late.late is True and late.filed_at is not None


def test_a_second_filing_for_the_same_round_is_refused(app, login):
    from models import AuditEntry, ProgressNote
    from workflow import round_services
    from workflow.services import Refused

    round_id = open_round(app)
    entry_id, _part_id, unit_id, task_id = entries_of(app, round_id)[0]
    staff = login(unit_username(unit_id, "staff"))
    file_on_task_page(staff, task_id, entry_id)
    with app.app_context():
        before = row_counts(db, ProgressNote, AuditEntry)
    page = staff.get(f"/tasks/{task_id}")
    response = staff.post(f"/rounds/entries/{entry_id}/file", data={
        "csrf_token": csrf(page.text), "percent": "50", "note": "再报一次"}, follow_redirects=True)
    assert "本轮已报送" in response.text
    with app.app_context():
        assert row_counts(db, ProgressNote, AuditEntry) == before
        from models import RoundPart
        with pytest.raises(Refused, match="本轮已报送"):
            round_services.file_round(db.session.get(RoundPart, entry_id), unit_user(unit_id, "staff"), 60, "又一次")
        db.session.rollback()


def test_another_unit_cannot_file_and_nothing_changes(app, login):
    from models import AuditEntry, ProgressNote, RoundPart

    round_id = open_round(app)
    entry_id, _part_id, unit_id, task_id = entries_of(app, round_id)[0]
    other_unit = next(u for _e, _p, u, _t in entries_of(app, round_id) if u != unit_id)
    intruder = login(unit_username(other_unit, "leader"))
    office = login("office")
    with app.app_context():
        before = row_counts(db, ProgressNote, AuditEntry, RoundPart)
    token = csrf_token(intruder, "/tasks/todo")
    response = intruder.post(f"/rounds/entries/{entry_id}/file", data={"csrf_token": token, "percent": "90",
                                                                        "note": "替别人报"})
    assert response.status_code == 403
    response = intruder.post("/rounds/file", data={"csrf_token": token, "entry": [str(entry_id)],
                                                   f"percent-{entry_id}": "90", f"note-{entry_id}": "替别人报"})
    assert response.status_code == 403
    response = office.post(f"/rounds/entries/{entry_id}/file", data={
        "csrf_token": csrf_token(office, "/rounds/"), "percent": "90", "note": "办公室代报"})
    assert response.status_code == 403
    with app.app_context():
        assert row_counts(db, ProgressNote, AuditEntry, RoundPart) == before
        assert db.session.get(RoundPart, entry_id).note_id is None


def test_the_todo_page_holds_the_earliest_entries_and_says_how_many_are_owed(app, login, monkeypatch):
    """A unit of a city's deployment can owe thousands of filings: the form holds the first few."""
    from workflow import round_services

    monkeypatch.setattr(round_services, "TODO_ENTRIES", 2)
    round_id = open_round(app)
    unit_id, rows = unit_with_entries(app, round_id, at_least=3)
    todo = login(unit_username(unit_id, "staff")).get("/tasks/todo").text
    assert f"调度报送（{len(rows)} 项）" in todo
    assert "这里列出最早到期的 2 项" in todo
    assert len(re.findall(r'name="note-\d+"', todo)) == 2


def test_bulk_filing_on_the_todo_page_is_all_or_nothing(app, login):
    from models import AuditEntry, ProgressNote, RoundPart

    round_id = open_round(app)
    unit_id, rows = unit_with_entries(app, round_id, at_least=3)
    (e1, _p1, _t1), (e2, _p2, _t2), (e3, _p3, _t3) = rows[:3]
    staff = login(unit_username(unit_id, "staff"))
    todo = staff.get("/tasks/todo").text
    assert 'id="round-filing"' in todo and f'name="note-{e1}"' in todo and f'name="note-{e3}"' in todo
    token = csrf(todo)

    def post(**fields):
        return staff.post("/rounds/file", data={"csrf_token": token, "entry": [str(e1), str(e2), str(e3)], **fields},
                          follow_redirects=True)

    with app.app_context():
        before = row_counts(db, ProgressNote, AuditEntry)
    # One bad percentage: nothing filed.
    response = post(**{f"percent-{e1}": "20", f"note-{e1}": "推进中", f"percent-{e2}": "150", f"note-{e2}": "超了"})
    assert "本次未报送任何任务" in response.text
    # One already filed (through the service, as if from the task page meanwhile): nothing filed either.
    from workflow import round_services
    with app.app_context():
        round_services.file_round(db.session.get(RoundPart, e3), unit_user(unit_id, "staff"), 10, "先报了")
        db.session.commit()
        before = row_counts(db, ProgressNote, AuditEntry)
    response = post(**{f"percent-{e1}": "20", f"note-{e1}": "推进中", f"percent-{e3}": "30", f"note-{e3}": "再报"})
    assert "本轮已报送" in response.text and "本次未报送任何任务" in response.text
    with app.app_context():
        assert row_counts(db, ProgressNote, AuditEntry) == before
        assert db.session.get(RoundPart, e1).note_id is None
    # Both good (the third row left empty is not filed): two filings, one audit entry each.
    response = staff.post("/rounds/file", data={"csrf_token": token, "entry": [str(e1), str(e2)],
                                                f"percent-{e1}": "20", f"note-{e1}": "推进中",
                                                f"percent-{e2}": "45", f"note-{e2}": "过半"}, follow_redirects=True)
    assert "已报送 2 项任务的调度进展" in response.text
    with app.app_context():
        assert [db.session.get(RoundPart, e).note.percent for e in (e1, e2)] == [20, 45]
        filed = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "round_filed")).all()
        assert sorted(a.part_id for a in filed) == sorted([_p1, _p2, _p3])


def test_a_closed_round_takes_no_filing(app, login):
    from models import ProgressNote, ProgressRound, RoundPart
    from workflow import round_services

    round_id = open_round(app)
    entry_id, _part_id, unit_id, task_id = entries_of(app, round_id)[0]
    staff = login(unit_username(unit_id, "staff"))
    page = staff.get(f"/tasks/{task_id}")
    with app.app_context():
        round_services.close_round(db.session.get(ProgressRound, round_id), user_named("office"))
        db.session.commit()
        before = row_counts(db, ProgressNote)
    response = staff.post(f"/rounds/entries/{entry_id}/file", data={"csrf_token": csrf(page.text), "percent": "40",
                                                                     "note": "晚了"}, follow_redirects=True)
    assert "本轮调度已结束" in response.text
    with app.app_context():
        assert row_counts(db, ProgressNote) == before and db.session.get(RoundPart, entry_id).note_id is None
    assert 'id="round-filing"' not in staff.get("/tasks/todo").text


# ---------------------------------------------------------------- closing and the 调度通报

@needs_poppler
def test_closing_produces_an_archived_verifiable_report_naming_late_and_missing_units(app, login, tmp_path):
    from models import AuditEntry, ProgressRound, ReportArchive, Unit
    from workflow import audit
    from workflow import background

    due = today(app)
    round_id = open_round(app, title="2022年6月调度", due_on=due, instructions="每月5日前报送上月进展")
    by_unit: dict[int, list] = {}
    for entry_id, _part_id, unit_id, task_id in entries_of(app, round_id):
        by_unit.setdefault(unit_id, []).append((entry_id, task_id))
    on_time_unit, late_unit, missing_unit = sorted(by_unit)[:3]
    with app.app_context():
        names = {u: db.session.get(Unit, u).name for u in (on_time_unit, late_unit, missing_unit)}
    for entry_id, task_id in by_unit[on_time_unit]:
        file_on_task_page(login(unit_username(on_time_unit, "staff")), task_id, entry_id)
    set_clock(app, due + timedelta(days=3))
    late_client = login(unit_username(late_unit, "staff"))
    for entry_id, task_id in by_unit[late_unit]:
        file_on_task_page(late_client, task_id, entry_id)

    office = login("office")
    page = office.get(f"/rounds/{round_id}")
    assert names[missing_unit] in page.text and "未报送" in page.text
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)
    response = office.post(f"/rounds/{round_id}/close", data={"csrf_token": csrf(page.text), "version": version},
                           follow_redirects=True)
    assert "本轮调度已结束" in response.text
    assert background.drain(app) == 1
    with app.app_context():
        round_ = db.session.get(ProgressRound, round_id)
        assert round_.state == "closed" and round_.closed_by.username == "office" and round_.closed_at is not None
        report = db.session.get(ReportArchive, round_.report_id)
        assert report.kind == "round" and report.status == "done", report.error
        assert report.params["round"] == round_id and report.params["as_of"] == (due + timedelta(days=3)).isoformat()
        closed = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "round_closed"))
        assert closed.details["late"] == len(by_unit[late_unit]) and closed.details["round"] == round_id
        assert audit.verify() == []
        archive_id = report.id
    pdf = office.get(f"/reports/{archive_id}/download")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    path = tmp_path / "round.pdf"
    path.write_bytes(pdf.data)
    text = re.sub(r"\s+", "", subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True,
                                             capture_output=True, text=True).stdout)
    assert "调度通报" in text and "2022年6月调度" in text and "每月5日前报送上月进展" in text
    # Each section from its heading and table header (the running page header repeats the heading alone).
    missing_section = text.split("二、未报送的单位单位未报送")[1].split("三、逾期报送的单位单位逾期")[0]
    late_section = text.split("三、逾期报送的单位单位逾期")[1].split("四、各单位报送情况单位应报送")[0]
    assert names[missing_unit] in missing_section and names[late_unit] not in missing_section
    assert names[on_time_unit] not in missing_section
    assert names[late_unit] in late_section and names[on_time_unit] not in late_section
    assert names[missing_unit] not in late_section
    with app.app_context():
        from models import RoundPart
        from workflow.timeutil import format_local
        filed_on = format_local(db.session.get(RoundPart, by_unit[late_unit][0][0]).filed_at, "%Y-%m-%d")
    assert f"（{filed_on}）" in late_section   # the late filing's date
    # The integrity page knows the file as an archived report.
    check = office.post("/audit/integrity", data={"csrf_token": csrf_token(office, "/audit/integrity"),
                                                  "report": (io.BytesIO(pdf.data), "通报.pdf")},
                        content_type="multipart/form-data")
    assert "是本系统存档的报告，内容未经改动" in check.text and "调度通报" in check.text
    # The round page links its 通报; the close button is gone.
    page = office.get(f"/rounds/{round_id}").text
    assert f'href="/reports/{archive_id}"' in page and f'action="/rounds/{round_id}/close"' not in page


def test_a_stale_or_repeated_close_changes_nothing(app, login):
    from models import AuditEntry, ProgressRound, ReportArchive

    round_id = open_round(app)
    office = login("office")
    token = csrf_token(office, f"/rounds/{round_id}")
    with app.app_context():
        before = row_counts(db, AuditEntry, ReportArchive)
    response = office.post(f"/rounds/{round_id}/close", data={"csrf_token": token, "version": "999"},
                           follow_redirects=True)
    assert "刚刚已被他人更新" in response.text
    response = office.post(f"/rounds/{round_id}/close", data={"csrf_token": token}, follow_redirects=True)
    assert "缺少版本号" in response.text
    with app.app_context():
        assert db.session.get(ProgressRound, round_id).state == "open"
        assert row_counts(db, AuditEntry, ReportArchive) == before
        from workflow import round_services
        from workflow.services import Refused
        round_services.close_round(db.session.get(ProgressRound, round_id), user_named("office"))
        db.session.commit()
        with pytest.raises(Refused, match="已结束"):
            round_services.close_round(db.session.get(ProgressRound, round_id), user_named("office"))
        db.session.rollback()


def test_the_new_report_form_does_not_offer_the_round_kind(app, login):
    from models import ReportArchive

    office = login("office")
    page = office.get("/reports/new")
    assert 'value="round"' not in page.text and "调度通报" not in page.text
    assert 'value="round"' not in office.get("/reports/new?kind=round").text
    plan = re.search(r'name="plan"[^>]*>\s*<option[^>]*value="(\d+)"', page.text).group(1)
    response = office.post("/reports/new", data={"csrf_token": csrf(page.text), "kind": "round", "plan": plan,
                                                 "as_of": "2022-06-30"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(ReportArchive.id))) == 0


def test_the_nav_links_rounds_for_the_office_and_viewers_only(app, login):
    from auth.passwords import hash_password
    from models import Role, TaskPart, Unit, User

    with app.app_context():
        office_unit = db.session.scalar(select(Unit.id).where(Unit.kind == "office"))
        db.session.add(User(username="viewer2", display_name="区领导", unit_id=office_unit, role=Role.VIEWER,
                            password_hash=hash_password("demo-2026")))
        db.session.commit()
    assert 'href="/rounds/"' in login("office").get("/tasks/").text
    viewer = login("viewer2")
    assert 'href="/rounds/"' in viewer.get("/tasks/").text and viewer.get("/rounds/").status_code == 200
    assert viewer.get("/rounds/new").status_code == 403
    with app.app_context():
        unit_id = db.session.scalar(select(TaskPart.unit_id).order_by(TaskPart.id).limit(1))
    assert 'href="/rounds/"' not in login(unit_username(unit_id, "staff")).get("/tasks/").text


def test_the_filing_form_shows_exactly_when_the_service_accepts(app):
    from auth.permissions import can
    from models import RoundPart
    from workflow import round_services
    from workflow.services import Refused

    round_id = open_round(app)
    entry_id, _part_id, unit_id, _task_id = entries_of(app, round_id)[0]
    with app.app_context():
        entry = db.session.get(RoundPart, entry_id)
        part, staff = entry.part, unit_user(unit_id, "staff")
        for state in ("planned", "in_progress", "submitted", "verified"):
            savepoint = db.session.begin_nested()
            part.state = state
            shown = can(staff, "part.file", part)
            try:
                round_services.file_round(entry, staff, 10, "推进中")
                accepted = True
            except Refused:
                accepted = False
            savepoint.rollback()
            db.session.expire_all()   # the filing's conditional UPDATE is undone in the database only
            assert shown == accepted == (state in ("planned", "in_progress")), state


def test_the_audit_page_reads_a_rounds_entries_in_chinese(app, login):
    from models import AuditEntry, ProgressRound
    from workflow import audit, round_services

    round_id = open_round(app)
    entry_id, _part_id, unit_id, task_id = entries_of(app, round_id)[0]
    file_on_task_page(login(unit_username(unit_id, "staff")), task_id, entry_id, percent=25)
    with app.app_context():
        round_services.close_round(db.session.get(ProgressRound, round_id), user_named("office"))
        db.session.commit()
        shown = {e.action: dict(audit.describe(e)) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.in_(("round_opened", "round_filed", "round_closed"))))}
        assert audit.ACTION_LABELS["round_opened"] == "发起调度" and audit.ACTION_LABELS["round_closed"] == "结束调度"
        assert shown["round_filed"]["完成比例"] == "25%" and shown["round_filed"]["逾期报送"] == "否"
        entries = len(entries_of(app, round_id))
        assert shown["round_closed"]["未报送"] == str(entries - 1) and shown["round_closed"]["已报送"] == "1"
    page = login("office").get("/audit").text
    assert "发起调度" in page and "调度报送" in page and "结束调度" in page


def test_the_round_close_row_has_its_service_registered(app):
    from workflow import machine, round_services, services

    row = machine.EVENT_BY_KEY[("round", "close")]
    assert services.TRANSITIONS[("round", "close")] is round_services.close_round
    assert row.action == "round.close" and re.search(r"[\u4e00-\u9fff]", row.success)
    transition = machine.MACHINES["round"].events["close"].transitions
    assert set(transition) == set(row.source) == {"open"}


# ---------------------------------------------------------------- real concurrent requests

def test_two_filings_of_one_entry_at_once_make_one(app, server):
    from models import ProgressNote, RoundPart
    from tests.test_concurrency import Browser, post_when_released, race

    round_id = open_round(app)
    entry_id, part_id, unit_id, task_id = entries_of(app, round_id)[0]
    browsers = [Browser(server), Browser(server)]
    browsers[0].login(unit_username(unit_id, "staff"))
    browsers[1].login(unit_username(unit_id, "leader"))
    calls = [post_when_released(b, f"/rounds/entries/{entry_id}/file",
                                {"csrf_token": b.csrf(f"/tasks/{task_id}"), "percent": str(20 + i), "note": f"第{i}次"})
             for i, b in enumerate(browsers)]
    flashes = race(*calls)
    assert sum("本轮调度进展已报送" in f for f in flashes) == 1, flashes
    assert sum("本轮已报送" in f or "已被他人更新" in f for f in flashes) == 1, flashes
    with app.app_context():
        assert db.session.scalar(select(func.count(ProgressNote.id)).where(ProgressNote.part_id == part_id)) == 1
        entry = db.session.get(RoundPart, entry_id)
        assert entry.note.percent == entry.part.progress


def test_a_filing_racing_the_close_lands_before_it_or_not_at_all(app, server):
    from models import ProgressRound, RoundPart
    from tests.test_concurrency import Browser, post_when_released, race
    from workflow import background

    round_id = open_round(app)
    entry_id, _part_id, unit_id, task_id = entries_of(app, round_id)[0]
    unit, office = Browser(server), Browser(server)
    unit.login(unit_username(unit_id, "staff"))
    office.login("office")
    flashes = race(
        post_when_released(unit, f"/rounds/entries/{entry_id}/file",
                           {"csrf_token": unit.csrf(f"/tasks/{task_id}"), "percent": "30", "note": "赶在结束前"}),
        post_when_released(office, f"/rounds/{round_id}/close",
                           {"csrf_token": office.csrf(f"/rounds/{round_id}"), "version": "1"}))
    assert background.drain(app) == 1
    assert "本轮调度已结束，调度通报正在生成" in flashes[1], flashes
    with app.app_context():
        round_ = db.session.get(ProgressRound, round_id)
        entry = db.session.get(RoundPart, entry_id)
        assert round_.state == "closed"
        if "本轮调度进展已报送" in flashes[0]:
            assert entry.filed_at is not None and entry.filed_at <= round_.closed_at
        else:
            assert "本轮调度已结束" in flashes[0] and entry.note_id is None, flashes


def test_a_filing_that_catches_up_releases_a_held_red_like_a_progress_report(app, login):
    from models import AuditEntry, RoundPart, TaskPart
    from workflow.timeutil import utcnow

    round_id = open_round(app)
    entry_id, part_id, unit_id, task_id = entries_of(app, round_id)[0]
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        part.task.long_term = False
        part.task.deadline = today(app) + timedelta(days=300)
        part.red_since, part.red_reason = utcnow(), "落后序时进度 40 个百分点"
        db.session.commit()
    file_on_task_page(login(unit_username(unit_id, "staff")), task_id, entry_id, percent=95, note="基本完成")
    with app.app_context():
        part = db.session.get(TaskPart, part_id)
        assert part.red_since is None and part.red_reason is None
        filed = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "round_filed"))
        assert filed.details["red_released"] is True
        assert db.session.get(RoundPart, entry_id).note.percent == 95


def test_the_todo_form_takes_the_earliest_entries_across_many_open_rounds(app, monkeypatch):
    """The entries are gathered round by round in due order (a few rounds, then twice as many): the ones
    shown are the earliest due of all the open rounds, whatever order the rounds were opened in."""
    from models import ProgressRound, RoundPart, TaskPart
    from workflow import round_services

    days = [9, 5, 7, 6, 10, 8]               # opened out of due order: ids do not follow the due dates
    round_ids = [open_round(app, title=f"专项调度{d}", kind="adhoc", due_on=today(app) + timedelta(days=d))
                 for d in days]
    unit_id, rows = unit_with_entries(app, round_ids[0], at_least=1)
    per_round = len(rows)
    monkeypatch.setattr(round_services, "TODO_ENTRIES", 4 * per_round + 1)   # into the second batch of rounds
    with app.app_context():
        owed = db.session.execute(
            select(RoundPart.id, ProgressRound.due_on, ProgressRound.id).join(ProgressRound)
            .join(TaskPart, TaskPart.id == RoundPart.part_id)
            .where(TaskPart.unit_id == unit_id, RoundPart.round_id.in_(round_ids))
            .order_by(ProgressRound.due_on, ProgressRound.id, RoundPart.id)).all()
        want = {entry_id for entry_id, _, _ in owed[:4 * per_round + 1]}
        entries, total = round_services.open_entries_of_unit(unit_id)
    assert total == len(owed) == per_round * len(days)
    assert {e.id for e in entries} == want
    dues = [e.round.due_on for e in entries]
    assert dues == sorted(dues) and dues[-1] == today(app) + timedelta(days=9)
