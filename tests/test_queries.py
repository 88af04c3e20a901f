"""workflow/queries.py on the seed plan: each query checked against the same
answer computed in Python from the ORM objects, and against N+1 loading."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from tests.helpers import unit_user, user_named as _user


@pytest.fixture
def db_template() -> str:
    return "seed"


def _tasks():
    from models import Task
    from workflow.extensions import db

    return db.session.scalars(select(Task)).all()


def _ids(stmt) -> list[int]:
    from workflow.extensions import db

    return [obj.id for obj in db.session.scalars(stmt)]


def _units_of(task) -> set[int]:
    return {u.id for u in task.lead_units} | {p.unit_id for p in task.parts}


TODAY = date(2022, 6, 30)


def test_filters_parse_and_drop_bad_values():
    from workflow.queries import TaskFilters

    f = TaskFilters.from_args(MultiDict({"plan": "1", "unit": "x", "state": "bogus", "due": "late", "q": "  债券 "}))
    assert (f.plan, f.unit, f.state, f.due, f.q) == (1, None, None, "late", "债券")
    assert len(f.errors) == 2
    assert f.as_args() == {"plan": 1, "due": "late", "q": "债券"}


def test_task_list_filters_match_python(app_context):
    from models import Item
    from workflow import queries
    from workflow.due import due_status
    from workflow.extensions import db

    office = _user("office")
    tasks = _tasks()

    def run(**args):
        f = queries.TaskFilters.from_args(MultiDict({k: str(v) for k, v in args.items()}))
        return set(_ids(queries.task_list(f, office, TODAY, 14)))

    assert run() == {t.id for t in tasks}
    unit = tasks[0].lead_units[0].id
    assert run(unit=unit) == {t.id for t in tasks if unit in _units_of(t)}
    chapter = tasks[-1].item.chapter_id
    assert run(chapter=chapter) == {t.id for t in tasks if t.item.chapter_id == chapter}
    late = {t.id for t in tasks if due_status(t, TODAY, 14) == "late"}
    near = {t.id for t in tasks if due_status(t, TODAY, 14) == "near"}
    assert run(due="late") == late and late
    assert run(due="near") == near and near and not late & near
    assert run(state="planned") == {t.id for t in tasks}
    assert run(state="closed") == set()
    # An item's filter covers its sub-items (19 → 19-1 … 19-5).
    parent = db.session.scalar(select(Item).where(Item.children.any()))
    expected = {t.id for t in tasks if t.item_id == parent.id or t.item.parent_id == parent.id}
    assert run(item=parent.id) == expected and expected
    # Text search: the task text, literally.
    sample = tasks[10]
    assert sample.id in run(q=sample.text[3:12])
    assert run(q="完全不存在的内容_%") == set()


def test_document_order(app_context):
    from workflow import queries
    from workflow.extensions import db

    rows = db.session.scalars(queries.task_list(queries.TaskFilters(), _user("office"), TODAY, 14)).all()
    keys = [(t.item.position, t.kind != "task", t.seq) for t in rows]
    assert keys == sorted(keys)


def test_unit_users_see_their_tasks_only(app_context):
    from auth.permissions import may
    from workflow import queries

    staff = _user("u03.staff")
    visible = set(_ids(queries.task_list(queries.TaskFilters(), staff, TODAY, 14)))
    assert visible == {t.id for t in _tasks() if may(staff, "task.view", t)}
    assert 0 < len(visible) < len(_tasks())


def test_todo_and_verify_parts(app_context):
    from models import Evidence, Submission, TaskPart
    from workflow import queries
    from workflow.extensions import db
    from workflow.vocabulary import SUBMITTED

    staff = _user("u03.staff")
    parts = db.session.scalars(select(TaskPart).where(TaskPart.unit_id == staff.unit_id)).all()
    assert set(_ids(queries.todo_parts(staff))) == {p.id for p in parts}

    # Two parts of tasks led by one unit, handed in at different times: oldest first.
    led = [p for p in db.session.scalars(select(TaskPart)) if p.task.lead_units
           and p.task.lead_units[0].id == 2 and p.unit_id != 2][:2]
    assert len(led) == 2
    for part, hours in zip(led, (1, 5)):
        part.state = SUBMITTED
        db.session.add(Evidence(part_id=part.id, kind="text", text="x", uploaded_by_id=staff.id,
                                uploaded_at=datetime(2022, 1, 1)))
        db.session.add(Submission(part_id=part.id, number=1, statement="s", submitted_by_id=staff.id,
                                  submitted_at=datetime(2022, 1, 1) + timedelta(hours=hours)))
    db.session.flush()
    leader = _user("u02.leader")
    assert _ids(queries.verify_parts(leader)) == [led[0].id, led[1].id]
    assert queries.verify_count(leader) == 2
    assert _ids(queries.verify_parts(_user("office"))) == [led[0].id, led[1].id]
    assert _ids(queries.verify_parts(_user("u05.leader"))) == []
    # Submitted parts leave their unit's to-do list.
    assert not {led[0].id, led[1].id} & set(_ids(queries.todo_parts(unit_user(led[0].unit_id, "staff"))))


def test_overview_counts_match_python(app_context):
    from workflow import queries
    from workflow.due import due_status

    tasks = _tasks()
    data = queries.overview(None, TODAY, 14)
    assert data["total"] == len(tasks)
    assert data["by_state"] == {"planned": len(tasks)}
    assert data["late"] == sum(due_status(t, TODAY, 14) == "late" for t in tasks)
    assert data["near"] == sum(due_status(t, TODAY, 14) == "near" for t in tasks)
    assert sum(ch["total"] for ch in data["chapters"]) == len(tasks)
    for ch in data["chapters"]:
        mine = [t for t in tasks if t.item.chapter_id == ch["id"]]
        assert ch["total"] == len(mine)
        assert ch["late"] == sum(due_status(t, TODAY, 14) == "late" for t in mine)
    for row in data["units"]:
        led = [t for t in tasks if row["id"] in {u.id for u in t.lead_units}]
        assert row["total"] == len(led) == sum(row["states"].values())
        assert row["late"] == sum(due_status(t, TODAY, 14) == "late" for t in led)
    # Most late first.
    assert [r["late"] for r in data["units"]] == sorted((r["late"] for r in data["units"]), reverse=True)
    assert queries.overview(999, TODAY, 14)["total"] == 0


def test_inbox_unread_first(app_context):
    from models import Notification
    from workflow import queries
    from workflow.extensions import db

    me = _user("u02.staff")
    base = datetime(2022, 3, 1)
    rows = [Notification(user_id=me.id, kind="urged", message=f"m{i}", created_at=base + timedelta(days=i),
                         read_at=base if i in (2, 3) else None) for i in range(5)]
    db.session.add_all(rows)
    db.session.add(Notification(user_id=_user("u02.leader").id, kind="urged", message="other", created_at=base))
    db.session.flush()
    messages = [n.message for n in db.session.scalars(queries.inbox(me))]
    assert messages == ["m4", "m1", "m0", "m3", "m2"]
    assert queries.unread_count(me) == 3


def test_audit_filters_use_china_time_days(app_context, monkeypatch):
    from workflow import audit, queries
    from workflow.extensions import db

    staff = _user("u02.staff")
    task = _tasks()[0]
    # 2022-05-01 16:30 UTC is already 2022-05-02 00:30 in Beijing.
    for moment, action in ((datetime(2022, 5, 1, 15, 59), "urge"), (datetime(2022, 5, 1, 16, 30), "progress")):
        monkeypatch.setattr(audit, "utcnow", lambda moment=moment: moment)
        audit.append(action, user=staff, task=task)
    monkeypatch.undo()

    def run(**args):
        f = queries.AuditFilters.from_args(MultiDict({k: str(v) for k, v in args.items()}))
        assert not f.errors
        return [e.action for e in db.session.scalars(queries.audit_entries(f))]

    assert run(date_from="2022-05-02", date_to="2022-05-02") == ["progress"]
    assert run(date_from="2022-05-01", date_to="2022-05-01") == ["urge"]
    assert run(user="u02.staff") == ["progress", "urge"]
    assert run(task=task.id, action="urge") == ["urge"]
    assert run(unit=staff.unit_id) == ["progress", "urge"]
    assert run(unit=_user("u03.staff").unit_id) == []
    assert queries.AuditFilters.from_args(MultiDict({"date_from": "5/2/2022"})).errors


def test_like_pattern_escapes():
    from workflow.queries import like_pattern

    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


def test_list_page_costs_the_same_queries_for_5_or_50_rows(app, app_context, count_queries):
    from workflow import queries
    from workflow.extensions import db

    office = _user("office")

    def cost(per_page: int) -> int:
        db.session.expire_all()
        with count_queries() as statements:
            page = db.paginate(queries.task_list(queries.TaskFilters(), office, TODAY, 14), page=1,
                               per_page=per_page)
            for task in page.items:     # everything a row shows
                task.number_label, task.item.chapter.title, [u.name for u in task.lead_units]
                [(p.unit.name, p.state) for p in task.parts]
            assert len(page.items) == per_page
        return len(statements)

    assert cost(5) == cost(50) <= 8


def test_the_task_page_reads_only_the_collections_that_have_rows(app, app_context, count_queries):
    """The task's own query says which of its collections have rows: a task with no hand-in, note,
    extension or milestone reads none of those tables; once it has a note, that one is read and shown."""
    from models import ProgressNote, Task
    from workflow import queries
    from workflow.extensions import db

    task = next(t for t in _tasks() if t.parts and not any(p.progress_notes or p.submissions or p.extensions
                                                           or p.milestones or p.evidence for p in t.parts))
    task_id, part_id = task.id, task.parts[0].id
    db.session.expunge_all()
    # A collection's own query selects its rows (the task's query names the tables only in EXISTS).
    collections = ("progress_note", "submission", "evidence", "extension_request", "milestone")

    def reading(statements, table):
        return [s for s in statements if s.lstrip().startswith(f"SELECT {table}.")]

    with count_queries() as quiet:
        loaded = queries.task_for_page(task_id)
        assert all(p.progress_notes == [] and p.milestones == [] for p in loaded.parts)
    assert not [s for table in collections for s in reading(quiet, table)], quiet

    db.session.add(ProgressNote(part_id=part_id, user_id=_user("office").id, at=datetime(2022, 8, 1, 2),
                                percent=30, note="已启动"))
    db.session.commit()
    db.session.expunge_all()
    with count_queries() as busy:
        loaded = queries.task_for_page(task_id)
    assert [n.note for n in loaded.parts[0].progress_notes] == ["已启动"]
    assert len(reading(busy, "progress_note")) == 1
    assert not [s for table in collections[1:] for s in reading(busy, table)]
    assert db.session.get(Task, task_id) is loaded
