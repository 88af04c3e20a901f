"""The lists page through their first COUNT_LIMIT rows (workflow/views/paging.py): the task list's
pages, walked as ids, are the list's rows in its order; the pager says how far it goes; a page asked
beyond is answered with the deepest one and a message, never with an empty page or an error."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "seed"


def _task_ids(html: str) -> list[int]:
    """The tasks of a list page, in the order shown (each row links its task twice)."""
    return list(dict.fromkeys(int(n) for n in re.findall(r'<td class="num" data-label="编号"><a href="/tasks/(\d+)', html)))


def _list_order(app) -> list[int]:
    """Every task id in the list's order, from the list's own statement (the office sees all)."""
    from models import User
    from workflow import queries
    from workflow.timeutil import today_local

    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        stmt = queries.task_list(queries.TaskFilters(), office, today_local(), app.config["NEAR_DUE_DAYS"])
        return [t.id for t in db.session.scalars(stmt)]


def test_the_task_list_pages_are_the_list_in_its_order(app, login):
    """Each page walks the ids of the rows before it and loads its own: together the pages are every
    task once, in the list's order (the seed's 193 tasks, 30 a page)."""
    office = login("office")
    order = _list_order(app)
    per_page = app.config["PER_PAGE"]
    pages = -(-len(order) // per_page)
    shown = []
    for number in range(1, pages + 1):
        html = office.get(f"/tasks/?page={number}").text
        ids = _task_ids(html)
        assert ids == order[(number - 1) * per_page:number * per_page], number
        shown += ids
    assert shown == order and len(order) > 2 * per_page
    assert "翻页只到" not in html and "列表只能翻到" not in html


def test_the_task_list_pages_no_deeper_than_the_limit(app, login):
    """COUNT_LIMIT 40 at 10 a page: four pages of the 193 tasks. The total stays exact, the pager
    says how far it goes and links no deeper; page 9 shows page 4 with a message."""
    app.config["COUNT_LIMIT"], app.config["PER_PAGE"] = 40, 10
    office = login("office")
    order = _list_order(app)
    first = office.get("/tasks/").text
    assert f"共 {len(order)} 条，第 1/4 页" in first and "翻页只到第 4 页" in first
    assert 'href="/tasks/?page=5"' not in first and 'href="/tasks/?page=4"' in first
    fourth = office.get("/tasks/?page=4").text
    assert _task_ids(fourth) == order[30:40] and 'rel="next"' not in fourth and "列表只能翻到" not in fourth
    beyond = office.get("/tasks/?page=9")
    assert beyond.status_code == 200
    assert _task_ids(beyond.text) == order[30:40] and 'aria-current="page">4</span>' in beyond.text
    assert "列表只能翻到第 4 页，已显示该页；要看后面的记录，请用筛选条件缩小范围。" in beyond.text


def test_a_filter_within_the_limit_reaches_its_last_page(app, login):
    """The limit bounds the walk, not the rows a narrower filter reaches: a state with fewer tasks
    than COUNT_LIMIT pages to its end and says nothing of a limit."""
    from sqlalchemy import func

    from models import Task

    with app.app_context():
        state, n = db.session.execute(select(Task.state, func.count()).group_by(Task.state)
                                      .order_by(func.count().desc())).first()
    app.config["COUNT_LIMIT"], app.config["PER_PAGE"] = n, 10
    office = login("office")
    last = -(-n // 10)
    html = office.get(f"/tasks/?state={state}&page={last}").text
    assert f"共 {n} 条，第 {last}/{last} 页" in html and "翻页只到" not in html
    assert len(_task_ids(html)) == n - (last - 1) * 10


def test_a_unit_to_do_pages_no_deeper_than_the_limit(app, login):
    """我的待办 (parts, not tasks) stops at the limit too, its total exact."""
    from sqlalchemy import func

    from models import TaskPart, User
    from workflow.vocabulary import TaskState

    with app.app_context():
        unit_id, n = db.session.execute(
            select(TaskPart.unit_id, func.count()).where(TaskPart.state.in_((TaskState.PLANNED, TaskState.IN_PROGRESS)))
            .group_by(TaskPart.unit_id).order_by(func.count().desc())).first()
        staff = db.session.scalar(select(User.username).where(User.unit_id == unit_id, User.username.like("%.staff")))
    assert n >= 3
    app.config["COUNT_LIMIT"], app.config["PER_PAGE"] = 2, 1
    client = login(staff)
    first = client.get("/tasks/todo").text
    assert f"共 {n} 条，第 1/2 页" in first and "翻页只到第 2 页" in first
    beyond = client.get(f"/tasks/todo?page={n}").text
    assert 'aria-current="page">2</span>' in beyond and "列表只能翻到第 2 页" in beyond


def _usernames(html: str) -> list[str]:
    return re.findall(r'<td data-label="用户名"><a href="/admin/users/\d+">([^<]+)</a>', html)


def test_a_list_without_a_cache_counts_no_further_than_the_limit(app, login):
    """The lists nobody caches (users, units, 调度 rounds, reports, 延期申请) count their rows up to
    COUNT_LIMIT and say "以上" beyond; their pages are the list's rows in order, no deeper than the
    limit, and a page beyond shows the deepest with the message."""
    from models import Unit, User
    from workflow import queries

    with app.app_context():
        order = [u.username for u in db.session.scalars(queries.users_list())]
        units = db.session.scalar(select(func.count(Unit.id)))
        assert len(order) > 12 and units > 12 and db.session.scalar(select(func.count(User.id))) == len(order)
    app.config["COUNT_LIMIT"], app.config["PER_PAGE"] = 12, 5
    office = login("office")
    first = office.get("/admin/users").text
    assert "共 12 条以上，第 1/3 页" in first and "翻页只到第 3 页" in first
    assert _usernames(first) == order[:5] and 'href="/admin/users?page=3"' in first
    assert 'href="/admin/users?page=4"' not in first
    third = office.get("/admin/users?page=3").text
    assert _usernames(third) == order[10:15] and "列表只能翻到" not in third
    beyond = office.get("/admin/users?page=40")
    assert beyond.status_code == 200 and _usernames(beyond.text) == order[10:15]
    assert "列表只能翻到第 3 页，已显示该页；要看后面的记录，请用筛选条件缩小范围。" in beyond.text
    assert "共 12 条以上" in office.get("/admin/units").text
    # A list shorter than the limit counts exactly and says nothing of a limit.
    for url in ("/rounds/", "/reports/"):
        html = office.get(url).text
        assert "共 0 条" in html and "以上" not in html and "翻页只到" not in html, url
