"""红黄蓝 on the lists (workflow/pace.py decides, the pages show): the task list and
its warning filter, the overview's counts, the to-do pages and the 待签收 list."""
from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest
from markupsafe import escape
from sqlalchemy import select

from workflow.extensions import db

CLOCK = date(2022, 6, 20)
ROW = re.compile(r'<tr>\s*(?:<td data-label="选择">.*?</td>\s*)?'
                 r'<td class="num" data-label="编号"><a [^>]*>([^<]+)</a>(.*?)</tr>', re.S)


@pytest.fixture
def db_template() -> str:
    return "seed"


@pytest.fixture
def app_config() -> dict:
    return {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": CLOCK.isoformat()}


def _assessed_tasks():
    from models import Item, Task
    from workflow import pace

    tasks = db.session.scalars(select(Task).join(Item).order_by(*Task.document_order())).all()
    return tasks, pace.assess_tasks(tasks, CLOCK)


def _rows(html: str) -> dict[str, str]:
    return {number: cells for number, cells in ROW.findall(html)}


def _badge(a) -> str:
    return f'<span class="badge warn-{a.level.value}">{a.label}</span> <span class="warn-reason">{escape(a.reason)}</span>'


def test_task_list_rows_show_pace_s_colour_and_reason(app, login):
    app.config["PER_PAGE"] = 1000
    with app.app_context():
        tasks, assessed = _assessed_tasks()
        expected = {t.number_label: assessed[t.id] for t in tasks}
    rows = _rows(login("office").get("/tasks/").get_data(as_text=True))
    assert set(rows) == set(expected)
    levels = Counter()
    for number, a in expected.items():
        cell = re.search(r'data-label="预警" class="warning">(.*?)</td>', rows[number], re.S).group(1).strip()
        if a.level is None:
            assert cell == "", number
        else:
            assert cell == _badge(a), number
            levels[a.level.value] += 1
    assert levels["red"] and levels["yellow"]


def test_warning_filter_lists_exactly_the_tasks_of_that_colour_and_pages_correctly(app, login):
    app.config["PER_PAGE"] = 10
    with app.app_context():
        tasks, assessed = _assessed_tasks()
    client = login("office")
    for level in ("red", "yellow", "blue"):
        want = [t.number_label for t in tasks if assessed[t.id].level == level]
        got, page = [], 1
        while True:
            html = client.get(f"/tasks/?warning={level}&page={page}").get_data(as_text=True)
            found = list(_rows(html))
            assert len(found) <= 10
            if page == 1:
                assert f"共 {len(want)} 条" in html
            got += found
            if 'rel="next"' not in html:
                break
            page += 1
        assert got == want, level
    # Combined with another filter: both apply.
    with app.app_context():
        from models import Item

        chapter = db.session.scalar(select(Item.chapter_id).join(Item.tasks).limit(1))
        want = [t.number_label for t in tasks if assessed[t.id].level == "red" and t.item.chapter_id == chapter]
    app.config["PER_PAGE"] = 1000
    html = client.get(f"/tasks/?warning=red&chapter={chapter}").get_data(as_text=True)
    assert list(_rows(html)) == want


def test_an_invalid_warning_filter_is_named_and_ignored(app, login):
    app.config["PER_PAGE"] = 1000
    html = login("office").get("/tasks/?warning=purple").get_data(as_text=True)
    assert "预警筛选无效，已忽略。" in html
    assert len(_rows(html)) == 193


def test_overview_counts_tasks_per_colour_and_links_to_the_filtered_list(app, login):
    with app.app_context():
        tasks, assessed = _assessed_tasks()
        counts = Counter(a.level.value for a in assessed.values() if a.level is not None)
    html = login("office").get("/overview").get_data(as_text=True)
    for level, label in (("red", "红色预警"), ("yellow", "黄色预警"), ("blue", "蓝色预警")):
        assert re.search(rf'<a class="stat warn-{level}" href="/tasks/\?warning={level}"><div class="n">{counts[level]}</div>'
                         rf'<div class="l">{label}</div></a>', html), level
    assert counts["red"] and counts["yellow"]


def test_unit_to_do_page_shows_each_part_s_colour(app, login):
    from models import TaskPart
    from tests.helpers import unit_username
    from workflow import pace, queries

    app.config["PER_PAGE"] = 1000
    with app.app_context():
        from models import User

        unit_id = db.session.scalar(select(TaskPart.unit_id).group_by(TaskPart.unit_id)
                                    .order_by(db.func.count().desc()).limit(1))
        user = db.session.scalar(select(User).where(User.username == unit_username(unit_id, "staff")))
        parts = db.session.scalars(queries.todo_parts(user)).all()
        assessed = pace.assess_parts(parts, CLOCK)
        expected = [(p.task.number_label, assessed[p.id]) for p in parts]
    html = login(unit_username(unit_id, "staff")).get("/tasks/todo").get_data(as_text=True)
    cells = re.findall(r'data-label="预警" class="warning">(.*?)</td>', html, re.S)
    assert len(cells) == len(expected) > 3
    for (number, a), cell in zip(expected, cells):
        assert cell.strip() == (_badge(a) if a.level else ""), number
    assert any(a.level for _, a in expected)


def test_office_to_do_page_counts_colours_and_links_to_the_list(app, login):
    with app.app_context():
        _, assessed = _assessed_tasks()
        red = sum(1 for a in assessed.values() if a.level is not None and a.level.value == "red")
    html = login("office").get("/tasks/todo").get_data(as_text=True)
    assert f'<a class="badge warn-red" href="/tasks/?warning=red">红色预警 {red} 项</a>' in html


def test_unreceived_list_shows_each_part_s_colour(app, login):
    from workflow import pace, queries

    app.config["PER_PAGE"] = 1000
    with app.app_context():
        parts = db.session.scalars(queries.unreceived_parts()).all()
        assessed = pace.assess_parts(parts, CLOCK)
        expected = [assessed[p.id] for p in parts]
    html = login("office").get("/tasks/unreceived").get_data(as_text=True)
    cells = re.findall(r'data-label="预警" class="warning">(.*?)</td>', html, re.S)
    assert len(cells) == len(expected) > 100
    assert [c.strip() for c in cells] == [_badge(a) if a.level else "" for a in expected]


def test_list_pages_assess_in_bulk_not_per_row(app, login, count_queries):
    """A page of 5 and a page of 50 cost the same number of queries (each measured after a first
    view, so that the figures kept until the trail moves are kept for both: workflow/head_cache.py)."""
    client = login("office")
    for path in ("/tasks/", "/tasks/unreceived"):
        costs = []
        for per_page in (5, 50):
            app.config["PER_PAGE"] = per_page
            assert client.get(path).status_code == 200
            with count_queries() as statements:
                assert client.get(path).status_code == 200
            costs.append(len(statements))
        assert costs[0] == costs[1], (path, costs)


@pytest.mark.parametrize("path", ["/tasks/?warning=red", "/tasks/?warning=yellow&page=2", "/tasks/unreceived", "/overview",
                                  "/tasks/todo"])
def test_coloured_pages_leave_no_rows_to_the_garbage_collector(app, client, path):
    """pace must not set ``part.task`` on a page that loaded the task with its parts:
    a task and its parts holding each other would be a reference cycle (issue 7).
    It takes the tasks, or asks ``permissions.task_of``."""
    from tests.helpers import log_in
    from tests.test_request_garbage import cyclic_garbage_of

    log_in(client, "office")
    leftovers = cyclic_garbage_of(client, path)
    assert not leftovers, f"{path}: {len(leftovers)} sessions/rows in reference cycles"


def test_the_overview_counts_red_and_yellow_per_chapter_and_lead_unit(app, login):
    """The overview's chapter and lead-unit tables carry each colour's count, linked
    to the task list filtered by that chapter or unit and colour."""
    with app.app_context():
        tasks, assessed = _assessed_tasks()
        by_chapter: Counter = Counter()
        by_unit: Counter = Counter()
        for task in tasks:
            level = assessed[task.id].level
            if level is not None:
                by_chapter[(task.item.chapter_id, level.value)] += 1
                for unit in task.lead_units:
                    by_unit[(unit.id, level.value)] += 1
    assert any(level == "red" for _, level in by_chapter) and any(level == "yellow" for _, level in by_chapter)
    page = login("office").get("/overview").get_data(as_text=True)
    links = {(m.group(1), m.group(2), m.group(3)): int(m.group(4)) for m in re.finditer(
        r'href="/tasks/\?(chapter|unit)=(\d+)&amp;warning=(red|yellow)[^"]*">(\d+)</a>', page)}
    for (chapter_id, level), n in by_chapter.items():
        if level in ("red", "yellow"):
            assert links[("chapter", str(chapter_id), level)] == n
    for (unit_id, level), n in by_unit.items():
        if level in ("red", "yellow"):
            assert links[("unit", str(unit_id), level)] == n
    shown = sum(n for (kind, _, _), n in links.items() if kind == "chapter")
    assert shown == sum(n for (_, level), n in by_chapter.items() if level in ("red", "yellow"))
