"""Every filtered list exports exactly what it shows (workflow/tables.py): the rows of
its filter (all of them, not only the page) in the page's order, as CSV (UTF-8 with a
BOM) or xlsx, with a Chinese file name, formula cells neutralised, and no row the
user may not see on that page."""
from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote

import pytest
from sqlalchemy import select

from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "activity"


NUMBER_CELL = re.compile(r'data-label="编号"><a [^>]*>([^<]+)</a>')
SEQ_CELL = re.compile(r'data-label="序号" class="num">(\d+)</td>')


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    raw = response.data
    assert raw.startswith("\ufeff".encode("utf-8")), "no BOM: Excel would not read it as UTF-8"
    return list(csv.reader(io.StringIO(raw.decode("utf-8")[1:])))


def _xlsx(response) -> list[tuple]:
    from openpyxl import load_workbook

    assert response.status_code == 200
    ws = load_workbook(io.BytesIO(response.data)).active
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
    return list(ws.iter_rows(values_only=True))


def _total(html: str) -> int:
    return int(re.search(r"共 (\d+) 条", html).group(1))


def _viewer(app) -> str:
    from models import User

    with app.app_context():
        return db.session.scalar(select(User.username).where(User.role == "viewer"))


def _unit_with_todo(app) -> tuple[str, str]:
    """A unit with parts to do and a leader with parts to verify, as (staff, leader) usernames."""
    from models import Role, User
    from tests.helpers import unit_username
    from workflow import queries

    with app.app_context():
        for leader in db.session.scalars(select(User).where(User.role == Role.UNIT_LEADER).order_by(User.id)):
            if queries.count_of(queries.verify_parts(leader)) >= 1 and \
                    queries.count_of(queries.todo_parts(leader)) >= 3:
                return unit_username(leader.unit_id, "staff"), leader.username
    raise AssertionError("no unit with both to-do and verify rows in the activity")


# Each list: (who, the page with a filter, the key column in the CSV, how the page shows the key).
def _cases(app):
    staff, leader = _unit_with_todo(app)
    return [
        ("office", "/tasks/?state=in_progress", "编号", NUMBER_CELL),
        ("office", "/tasks/?warning=red", "编号", NUMBER_CELL),
        (staff, "/tasks/?due=late", "编号", NUMBER_CELL),
        (staff, "/tasks/todo", "编号", NUMBER_CELL),
        ("office", "/tasks/todo", "编号", NUMBER_CELL),
        ("office", "/tasks/unreceived", "编号", NUMBER_CELL),
        (leader, "/tasks/verify", "编号", NUMBER_CELL),
        ("office", "/tasks/verify", "编号", NUMBER_CELL),
        ("office", "/audit?action=transition", "序号", SEQ_CELL),
    ]


def _page_rows(html: str, pattern) -> list[str]:
    # The to-do page for a unit leader has a second table (待我核验) after the first.
    html = html.split("<h2>待我核验</h2>")[0]
    # A unit's to-do page also has its round filings (调度报送) above the list.
    html = re.sub(r'<section class="card" id="round-filing">.*?</section>', "", html, flags=re.S)
    return pattern.findall(html)


def test_every_list_exports_the_rows_it_shows_in_order_as_csv_and_xlsx(app, login):
    app.config["PER_PAGE"] = 10000
    checked = 0
    for who, path, key, pattern in _cases(app):
        client = login(who)
        html = client.get(path).get_data(as_text=True)
        shown = _page_rows(html, pattern)
        sep = "&" if "?" in path else "?"
        rows = _csv(client.get(f"{path}{sep}format=csv"))
        header, body = rows[0], rows[1:]
        assert [r[header.index(key)] for r in body] == shown, (who, path)
        sheet = _xlsx(client.get(f"{path}{sep}format=xlsx"))
        assert list(sheet[0]) == header, (who, path)
        assert [str(r[header.index(key)]) for r in sheet[1:]] == shown, (who, path)
        checked += bool(shown)
    # Every case had rows: the comparisons were not of two empty lists.
    assert checked == len(_cases(app))


def test_export_has_all_rows_of_the_filter_not_only_the_page(app, login):
    app.config["PER_PAGE"] = 5
    client = login("office")
    for path in ("/tasks/?state=in_progress", "/tasks/unreceived", "/tasks/verify", "/audit", "/tasks/?warning=red"):
        html = client.get(path).get_data(as_text=True)
        total = _total(html)
        assert total > 5, path
        sep = "&" if "?" in path else "?"
        assert len(_csv(client.get(f"{path}{sep}format=csv&page=2"))) - 1 == total, path


def test_export_columns_are_the_page_s_and_carry_colour_and_reason(app, login):
    from models import Item, Task
    from workflow import pace
    from workflow.timeutil import today_local

    client = login("office")
    rows = _csv(client.get("/tasks/?format=csv"))
    assert rows[0] == ["编号", "任务内容", "牵头单位", "承办单位", "完成时限", "状态", "预警", "预警原因"]
    with app.app_context():
        tasks = db.session.scalars(select(Task).join(Item).order_by(*Task.document_order())).all()
        assessed = pace.assess_tasks(tasks, today_local())
        expected = [[t.number_label, t.text, assessed[t.id].label, assessed[t.id].reason or ""] for t in tasks]
    assert [[r[0], r[1], r[6], r[7]] for r in rows[1:]] == expected
    assert _csv(client.get("/tasks/unreceived?format=csv"))[0][-2:] == ["预警", "预警原因"]
    assert _csv(client.get("/audit?format=csv"))[0] == ["序号", "时间", "用户", "单位", "IP", "操作", "任务", "理由/内容", "详情"]


def test_export_links_carry_the_current_filters(app, login):
    html = login("office").get("/tasks/?state=in_progress&due=late&page=2").get_data(as_text=True)
    links = re.findall(r'href="(/tasks/\?[^"]*format=(?:csv|xlsx)[^"]*)"', html)
    assert len(links) == 2 and "导出 Excel" in html and "导出 CSV" in html
    for link in links:
        link = link.replace("&amp;", "&")
        assert "state=in_progress" in link and "due=late" in link and "page=" not in link
    for path in ("/tasks/todo", "/tasks/unreceived", "/tasks/verify", "/audit?user=office"):
        page = login("office").get(path).get_data(as_text=True)
        assert "format=csv" in page and "format=xlsx" in page, path
    assert "user=office" in re.search(r'href="(/audit\?[^"]*format=csv[^"]*)"', page).group(1)


def test_export_file_names_are_chinese_by_rfc_5987(app, login):
    client = login("office")
    for path, name in (("/tasks/", "任务列表"), ("/tasks/unreceived", "待签收"), ("/tasks/verify", "待核验"),
                       ("/audit", "审计日志"), ("/tasks/todo", "待办结任务")):
        for fmt in ("csv", "xlsx"):
            disposition = client.get(f"{path}?format={fmt}").headers["Content-Disposition"]
            assert disposition.startswith("attachment; filename=\"")
            assert f"filename*=UTF-8''{quote(name)}-" in disposition and disposition.endswith(f".{fmt}")
            # The ASCII fallback is a real name, not a bare date.
            assert re.search(r'filename="[a-z-]+-\d{4}-\d{2}-\d{2}\.' + fmt + '"', disposition), disposition


def test_formula_cells_are_neutralised_in_both_formats(app, login):
    from models import Item, Task

    with app.app_context():
        tasks = db.session.scalars(select(Task).join(Item).order_by(*Task.document_order()).limit(4)).all()
        payloads = ['=HYPERLINK("http://example.invalid","点我")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1,1)"]
        for task, text in zip(tasks, payloads):
            task.text = text
        db.session.commit()
    client = login("office")
    rows = _csv(client.get("/tasks/?format=csv"))
    texts = [r[1] for r in rows[1:5]]
    assert texts == ["'" + p for p in payloads]
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(client.get("/tasks/?format=xlsx").data)).active
    cells = [ws.cell(row=i, column=2) for i in range(2, 6)]
    assert [c.value for c in cells] == ["'" + p for p in payloads]
    assert all(c.data_type == "s" for c in cells)
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)


def test_a_unit_user_s_export_has_only_their_rows(app, login):
    from models import Task, User
    from workflow import queries

    staff, _ = _unit_with_todo(app)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == staff))
        visible = {t.number_label for t in db.session.scalars(select(Task).where(queries.unit_clause(user.unit_id)))}
        everything = {t.number_label for t in db.session.scalars(select(Task))}
        todo = {p.task.number_label for p in db.session.scalars(queries.todo_parts(user))}
    client = login(staff)
    exported = {r[0] for r in _csv(client.get("/tasks/?format=csv"))[1:]}
    assert exported == visible and exported < everything
    assert {r[0] for r in _csv(client.get("/tasks/todo?format=csv"))[1:]} == todo
    # Lists the unit may not see are refused as their pages are.
    for path in ("/audit?format=csv", "/tasks/unreceived?format=xlsx"):
        assert client.get(path).status_code == 403, path


def test_a_viewer_exports_what_the_viewer_sees(app, login):
    app.config["PER_PAGE"] = 10000
    client = login(_viewer(app))
    assert client.get("/audit?format=csv").status_code == 403
    for path in ("/tasks/unreceived", "/tasks/verify", "/tasks/?warning=red"):
        shown = _page_rows(client.get(path).get_data(as_text=True), NUMBER_CELL)
        sep = "&" if "?" in path else "?"
        assert [r[0] if path != "/tasks/unreceived" else r[1] for r in _csv(client.get(f"{path}{sep}format=csv"))[1:]] \
            == shown, path


def test_an_unknown_format_shows_the_page_with_a_message(app, login):
    r = login("office").get("/tasks/?format=pdf")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "导出格式无效" in r.get_data(as_text=True)
    r = login("office").get("/audit?format=../x")
    assert r.status_code == 200 and "导出格式无效" in r.get_data(as_text=True)


def test_a_round_and_the_extension_requests_export_what_their_pages_list(app, login):
    """The round page (every part it asked for, with its filing) and 延期审批's list
    of requests export as CSV with a BOM and as xlsx; a unit cannot export a round."""
    from datetime import date

    from sqlalchemy import func

    from models import ExtensionRequest, Plan, TaskPart, User
    from workflow import round_services

    with app.app_context():
        office = db.session.scalar(select(User).where(User.username == "office"))
        plan = db.session.scalar(select(Plan))
        round_ = round_services.open_round(plan, office, kind="adhoc", title="专项调度=测试", due_on=date(2100, 1, 1))
        entries = len(round_.entries)
        part = db.session.scalar(select(TaskPart).order_by(TaskPart.id))
        db.session.add(ExtensionRequest(part_id=part.id, state="pending_lead", requested_by_id=office.id,
                                        requested_at=plan.imported_at, old_deadline=date(2022, 12, 31),
                                        new_deadline=date(2023, 3, 31), reason="=HYPERLINK(\"x\")", progress=10))
        db.session.commit()
        round_id = round_.id
    client = login("office")
    page = client.get(f"/rounds/{round_id}").get_data(as_text=True)
    assert "format=csv" in page
    response = client.get(f"/rounds/{round_id}?format=csv")
    assert response.data.startswith("\ufeff".encode())
    rows = _csv(response)
    assert rows[0][:4] == ["承办单位", "编号", "任务内容", "报送情况"] and len(rows) - 1 == entries
    assert {r[3] for r in rows[1:]} == {"未报送"}
    assert _xlsx(client.get(f"/rounds/{round_id}?format=xlsx"))
    with app.app_context():
        requests = db.session.scalar(select(func.count(ExtensionRequest.id)))
    rows = _csv(client.get("/extensions?show=all&format=csv"))
    assert len(rows) - 1 == requests
    assert "'=HYPERLINK(\"x\")" in [r[rows[0].index("申请理由")] for r in rows[1:]]
    staff = login(unit_username_of_first_part(app))
    assert staff.get(f"/rounds/{round_id}?format=csv").status_code == 403


def unit_username_of_first_part(app) -> str:
    from models import TaskPart
    from tests.helpers import unit_username

    with app.app_context():
        return unit_username(db.session.scalar(select(TaskPart.unit_id).order_by(TaskPart.id)), "staff")
