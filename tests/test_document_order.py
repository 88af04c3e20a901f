"""One document order and one "deadline as shown", whichever output shows the tasks:
the task list, the item page, the export (JSON and ledger) and the report figures."""
from __future__ import annotations

import io
import re
from datetime import date

import pytest
from sqlalchemy import select

from tests.helpers import log_in
from workflow.extensions import db

AS_OF = date(2022, 6, 30)


@pytest.fixture
def db_template() -> str:
    return "seed"


def _plan_id() -> int:
    from models import Plan

    return db.session.scalar(select(Plan.id))


def _strip(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip()


def _list_page_rows(client, plan_id: int) -> list[tuple[str, str]]:
    """(number, deadline) of every row of the task list, in page order."""
    html = client.get(f"/tasks/?plan={plan_id}").get_data(as_text=True)
    rows = re.findall(r'data-label="编号"><a [^>]*>([^<]+)</a>.*?data-label="时限" class="nowrap">(.*?)</td>',
                      html, re.S)
    return [(number, _strip(shown)) for number, shown in rows]


def _ledger_rows(plan_id: int) -> list[tuple]:
    from openpyxl import load_workbook

    from workflow.export import plan_as_xlsx

    sheet = load_workbook(io.BytesIO(plan_as_xlsx(plan_id))).active
    # One row per part: a task's rows are consecutive and repeat its columns.
    rows = []
    for r in sheet.iter_rows(min_row=3, values_only=True):
        if not rows or rows[-1][2:5] != r[2:5]:
            rows.append(r)
    return rows


def _report_rows(plan_id: int) -> list[dict]:
    from models import Plan
    from workflow.reports import data

    figures = data.overall(db.session.get(Plan, plan_id), AS_OF, 14)
    return [row for chapter in figures["chapters"] for row in chapter["rows"]]


def test_list_page_export_ledger_and_report_give_the_same_document_order(app, client):
    from models import Item, Task
    from workflow.export import plan_as_dict
    from workflow.vocabulary import TaskKind

    app.config["PER_PAGE"] = 1000   # the whole plan on one page
    log_in(client, "office")
    with app.app_context():
        plan_id = _plan_id()
        tasks = db.session.scalars(select(Task).join(Item).where(Item.plan_id == plan_id)).all()
        expected = [t.number_label for t in sorted(tasks, key=lambda t: t.document_key)]
        in_sql = [t.number_label for t in db.session.scalars(
            select(Task).join(Item).where(Item.plan_id == plan_id).order_by(*Task.document_order()))]
        exported = [f"{i['number']}-{TaskKind(t['kind']).short}{t['seq']}"
                    for i in plan_as_dict(plan_id)["plan"]["items"] for t in i["tasks"]]
        ledger = [f"{r[2]}-{'任' if r[3] == '工作任务' else '保'}{r[4]}" for r in _ledger_rows(plan_id)]
        report = [r["number"] for r in _report_rows(plan_id)]
    listed = [number for number, _ in _list_page_rows(client, plan_id)]

    assert len(expected) == len(tasks) > 100
    # The order means something: 工作任务 come before the same item's 保障措施, whose
    # numbers restart at 1, and items follow their position, not their id.
    first_measure = next(i for i, n in enumerate(expected) if "-保" in n)
    assert expected[first_measure - 1].split("-")[0] == expected[first_measure].split("-")[0]
    assert "-任" in expected[first_measure - 1]
    assert in_sql == expected
    assert listed == expected
    assert exported == expected
    assert ledger == expected
    assert report == expected


def _three_tasks():
    """A long-term task, a dated one and one with neither (its wording kept in deadline_text)."""
    from models import Task

    tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
    long_term = next(t for t in tasks if t.long_term)
    dated = next(t for t in tasks if t.deadline is not None)
    undecided = next(t for t in tasks if t.deadline is None and not t.long_term)
    # Words that are not a date are still 未定, in every output.
    undecided.deadline_text = "视情况而定"
    db.session.commit()
    return long_term, dated, undecided


def test_deadline_is_shown_by_one_rule_on_pages_ledger_and_report(app, client):
    from workflow.due import deadline_shown
    from workflow.export import LEDGER_HEADERS

    app.config["PER_PAGE"] = 1000
    log_in(client, "office")
    with app.app_context():
        long_term, dated, undecided = _three_tasks()
        cases = [(t.id, t.number_label, t.item.number, t.kind_label, t.seq, want) for t, want in (
            (long_term, "长期"), (dated, dated.deadline.isoformat()), (undecided, "未定"))]
        assert [deadline_shown(t) for t in (long_term, dated, undecided)] == [c[-1] for c in cases]
        plan_id = _plan_id()
        original = LEDGER_HEADERS.index("原定时限")
        ledger = {(r[2], r[3], r[4]): r[original] for r in _ledger_rows(plan_id)}
        report = {r["id"]: r["deadline"] for r in _report_rows(plan_id)}
    listed = dict(_list_page_rows(client, plan_id))

    for task_id, number, item_number, kind_label, seq, want in cases:
        page = client.get(f"/plans/{plan_id}/items/{item_number}").get_data(as_text=True)
        row = re.search(rf'<tr id="task-{task_id}">(.*?)</tr>', page, re.S).group(1)
        cell = re.findall(r"<td>(.*?)</td>", row, re.S)[5]
        assert _strip(cell.split("<div")[0]) == want, (number, cell)
        assert listed[number] == want
        assert report[task_id] == want
        shown_in_ledger = ledger[(item_number, kind_label, seq)]
        # The ledger keeps a real date cell for a date (sortable in Excel).
        assert (shown_in_ledger.date().isoformat() if want[0].isdigit() else shown_in_ledger) == want
