"""The overview with several plans: a summary row per plan (a page of them), the chapter and unit
tables once a plan is chosen, and the all-plans counts kept until the audit trail moves."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from tests.fidelity import SHAPES
from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "activity"


@pytest.fixture
def two_plans(app):
    from models import Plan
    from workflow.importer import service

    with app.app_context():
        service.confirm(service.review_upload((SHAPES / "compilation-other-wording.txt").read_bytes(),
                                              "other.txt"))
        return [(p.id, p.title) for p in db.session.scalars(select(Plan).order_by(Plan.id))]


def _tile(html: str, label: str) -> int:
    return int(re.search(rf'<div class="n">(\d+)</div><div class="l">{label}</div>', html)[1])


def test_with_several_plans_the_overview_lists_them_and_a_plan_has_its_tables(app, login, two_plans):
    from models import Task

    office = login("office")
    html = office.get("/overview").get_data(as_text=True)
    assert "<h2>按实施方案</h2>" in html and "<h2>按章节</h2>" not in html and "<h2>按牵头单位</h2>" not in html
    rows = re.findall(r'<tr><th scope="row"><a href="/overview\?plan=(\d+)">', html)
    assert sorted(int(r) for r in rows) == sorted(pid for pid, _ in two_plans)
    with app.app_context():
        total = db.session.scalar(select(func.count(Task.id)))
    assert _tile(html, "任务总数") == total

    pid, title = two_plans[1]
    html = office.get(f"/overview?plan={pid}").get_data(as_text=True)
    assert "<h2>按章节</h2>" in html and "<h2>按牵头单位</h2>" in html and "<h2>按实施方案</h2>" not in html
    assert _tile(html, "任务总数") == 16      # the other district's compilation


def test_the_all_plans_counts_move_with_the_audit_trail(app, login, two_plans):
    from models import Task
    from workflow import audit

    office = login("office")
    before = _tile(office.get("/overview").get_data(as_text=True), "已办结")
    with app.app_context():
        task_id = db.session.scalar(select(Task.id).where(Task.state != "closed").order_by(Task.id).limit(1))
        db.session.execute(update(Task).where(Task.id == task_id).values(state="closed"))
        db.session.commit()
    # Written behind the trail's back: the counts stay as they were counted …
    assert _tile(office.get("/overview").get_data(as_text=True), "已办结") == before
    with app.app_context():
        audit.append("task_edited", task=db.session.get(Task, task_id), details={"note": "test"})
        db.session.commit()
    # … and any audited change counts them again.
    assert _tile(office.get("/overview").get_data(as_text=True), "已办结") == before + 1


def test_the_chapter_filter_lists_the_chosen_plans_chapters_only(app, login, two_plans):
    """Every plan's chapters in every list page would make it hundreds of KB at a city's scale."""
    from models import Chapter

    office = login("office")
    (seed_id, _), (other_id, _) = two_plans
    with app.app_context():
        chapters = {pid: {c.id for c in db.session.scalars(select(Chapter).where(Chapter.plan_id == pid))}
                    for pid in (seed_id, other_id)}

    def options(html):
        select_html = re.search(r'<select name="chapter">(.*?)</select>', html, re.S)[1]
        return {int(v) for v in re.findall(r'<option value="(\d+)"', select_html)}

    assert options(office.get(f"/tasks/?plan={other_id}").get_data(as_text=True)) == chapters[other_id]
    html = office.get("/tasks/").get_data(as_text=True)
    assert options(html) == set() and "先选择实施方案" in html
    one = min(chapters[seed_id])
    assert options(office.get(f"/tasks/?chapter={one}").get_data(as_text=True)) == {one}
